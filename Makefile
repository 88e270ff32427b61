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

# Benchmarks, not part of `make test`; docs/benchmarks.md describes them. `bench` installs
# matplotlib into .venv and community.postgresql into a venv of its own, then runs the whole
# benchmark (about 20 minutes on 2 cores). BENCH_ARGS adds options, for example
# BENCH_ARGS="--sizes 10,100 --repeat 3 --skip-community --skip-fanout".
BENCH_STAMP := $(VENV)/.bench-requirements-installed
COMMUNITY_VENV := bench/.venv-community
COMMUNITY_STAMP := $(COMMUNITY_VENV)/.requirements-installed
BENCH_ARGS ?=

.PHONY: bench bench-smoke

$(BENCH_STAMP): requirements-bench.txt $(REQUIREMENTS_STAMP)
	$(VENV_BIN)/python -m pip install --disable-pip-version-check -r requirements-bench.txt
	touch $@

$(COMMUNITY_VENV)/bin/python:
	$(PYTHON) -m venv $(COMMUNITY_VENV)

$(COMMUNITY_STAMP): bench/requirements-community.txt | $(COMMUNITY_VENV)/bin/python
	$(COMMUNITY_VENV)/bin/python -m pip install --disable-pip-version-check \
		-r bench/requirements-community.txt
	touch $@

bench: setup $(BENCH_STAMP) $(COMMUNITY_STAMP)
	$(VENV_BIN)/python -m bench.migrate $(BENCH_ARGS)

# The quickest run: 10 synthetic files and the shipped SQL, once each, without
# community.postgresql and the fan-out. Results go to bench/results/smoke.
bench-smoke: setup $(BENCH_STAMP)
	$(VENV_BIN)/python -m bench.migrate --sizes 10 --repeat 1 --skip-community --skip-fanout \
		--output-dir bench/results/smoke $(BENCH_ARGS)

# The awx.awx collection, for the syntax check and ansible-lint of awx/configure_awx.yml
# (tests/integration/test_awx_files.py runs this target). Galaxy cannot be reached from every
# machine that runs the tests, so the collection comes from the `ansible` package on PyPI,
# which bundles it: ansible 12.3.0 contains awx.awx 24.6.1 and requires ansible-core 2.19.
# Only ansible_collections/awx/awx (2 MB) is unpacked from the 54 MB wheel, because
# installing the whole package would add about 480 MB. It lands inside .venv, so
# `make clean` removes it and collection builds leave it out.
AWX_ANSIBLE_VERSION := 12.3.0
AWX_COLLECTIONS := $(VENV)/awx-collections
AWX_WHEEL_DIR := $(VENV)/awx-wheel
AWX_COLLECTION_MANIFEST := $(AWX_COLLECTIONS)/ansible_collections/awx/awx/MANIFEST.json

.PHONY: awx-collection

awx-collection: $(AWX_COLLECTION_MANIFEST)

# The members are unpacked into a temporary directory that is renamed at the end, so an
# interrupted run leaves no MANIFEST.json behind and the next run starts again.
$(AWX_COLLECTION_MANIFEST): | $(VENV_BIN)/python
	rm -rf $(AWX_COLLECTIONS) $(AWX_COLLECTIONS).partial $(AWX_WHEEL_DIR)
	$(VENV_BIN)/python -m pip download --disable-pip-version-check --no-deps \
		--dest $(AWX_WHEEL_DIR) ansible==$(AWX_ANSIBLE_VERSION)
	$(VENV_BIN)/python -c 'import sys, zipfile; \
		wheel = zipfile.ZipFile(sys.argv[1]); \
		members = [n for n in wheel.namelist() if n.startswith("ansible_collections/awx/awx/")]; \
		wheel.extractall(sys.argv[2], members)' \
		$(AWX_WHEEL_DIR)/ansible-$(AWX_ANSIBLE_VERSION)-py3-none-any.whl $(AWX_COLLECTIONS).partial
	mv $(AWX_COLLECTIONS).partial $(AWX_COLLECTIONS)
	rm -rf $(AWX_WHEEL_DIR)
