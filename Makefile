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

bench: deps
	@for b in bench/*; do [ -x "$$b" ] && "$$b"; done

clean:
	rm -rf build .lab tests/output .mypy_cache .ruff_cache .pytest_cache
