# Development tasks. Every target creates .venv on first use and reinstalls the requirements
# only when requirements.txt or requirements-test.txt changed since the last install.

SHELL := /bin/bash
.DEFAULT_GOAL := test

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
VENV_BIN := $(VENV)/bin
REQUIREMENTS_STAMP := $(VENV)/.requirements-installed
# The relative target ../../.. leads from this link back to the repository root, so Ansible
# finds the checkout as the collection dbops.migrations wherever it is cloned.
COLLECTION_LINK := .collections/ansible_collections/dbops/migrations
PYTEST_WORKERS ?= 2
PYTEST_ARGS ?=

.PHONY: setup demo test lint clean

setup: $(REQUIREMENTS_STAMP) $(COLLECTION_LINK)

$(VENV_BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(REQUIREMENTS_STAMP): requirements.txt requirements-test.txt | $(VENV_BIN)/python
	$(VENV_BIN)/python -m pip install --disable-pip-version-check -r requirements-test.txt
	touch $@

$(COLLECTION_LINK):
	mkdir -p $(@D)
	ln -sfn ../../.. $@

demo: setup
	$(VENV_BIN)/python tools/demo.py

test: setup
	$(VENV_BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS) tests

lint: setup
	$(VENV_BIN)/ruff check .
	$(VENV_BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .collections .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
