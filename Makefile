# fanout: `make test` runs every check CI runs. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export MOTO_SERVER := $(CURDIR)/$(VENV)/bin/moto_server
export CARGO_TERM_COLOR ?= never

.PHONY: test lint unit dev-tools fmt clean

## test: formatting, lints, unit and integration tests (against moto server)
test: dev-tools lint
	cargo test --workspace --all-targets

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

## dev-tools: the pinned Python tools (moto server, cargo-lambda) in .venv
dev-tools: $(VENV)/.dev-tools

$(VENV)/.dev-tools: requirements-dev.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

fmt:
	cargo fmt --all

clean:
	cargo clean
	rm -rf $(VENV)
