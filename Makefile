# tlsops.haproxy_acme: two commands on a fresh Debian 12 or 13 machine, as root.
#   make demo   installs what it needs, then runs the main job on a local pebble + HAProxy
#   make test   installs what it needs, then runs every test and prints a summary line

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/build/collections
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: demo test deps unit lint sanity integration molecule bench docs clean

deps:
	@scripts/bootstrap.sh

demo: deps
	@$(PY) -m tests.lab.demo

test: deps
	@scripts/run-tests.sh

unit: deps
	@$(PY) -m pytest -q tests/unit

lint: deps
	@scripts/run-tests.sh lint

sanity: deps
	@scripts/run-tests.sh sanity

integration: deps
	@scripts/run-tests.sh integration

molecule: deps
	@scripts/run-tests.sh molecule

# The docs site, offline, into build/docs/site/build/html (scripts/build-docs.sh).
docs: deps
	@scripts/build-docs.sh

# Every benchmark, peers (certbot, lego, community.crypto) measured in the same run, into
# bench/out/report.md (bench/run.py). Not part of make test; tests/integration/test_bench_smoke.py
# runs bench/run --smoke.
bench: deps
	@bench/run --all

clean:
	rm -rf build .lab tests/output .mypy_cache .ruff_cache .pytest_cache
