# Nexus build. `make help` lists the targets. Every target installs what it needs
# (into .venv/, .tools/ and target/, all inside the checkout) and is cheap the second time:
# each install step leaves a stamp in .stamps/ and reruns only when its inputs change.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMPS := .stamps
BUF_VERSION := 1.75.0
BUF := .tools/node_modules/.bin/buf
# Wheels that compile for minutes (QuickFIX) are cached here, outside the checkout.
WHEEL_CACHE ?= $(HOME)/.cache/nexus/wheels
# Profile of the native module: release (default; benchmarks need it) or dev.
PROFILE ?= release

PROTOS := $(shell find proto -name '*.proto' 2>/dev/null)
RUST_SRC := Cargo.toml Cargo.lock $(shell find rust -name '*.rs' -o -name 'Cargo.toml' 2>/dev/null)
PY_SRC_DIRS := python/nexus clients/python orchestration tests tools
# Generated packages: python/nexus/<service> for each proto/nexus/<service>/v1.
GEN_DIRS := $(addprefix python/nexus/,$(sort $(foreach f,$(PROTOS),$(word 3,$(subst /, ,$(f))))))

export PIP_DISABLE_PIP_VERSION_CHECK := 1
export CARGO_TERM_COLOR := never

.PHONY: help
help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-16s %s\n", $$1, $$2}'

$(STAMPS):
	@mkdir -p $@

$(STAMPS)/venv: pyproject.toml clients/python/pyproject.toml orchestration/pyproject.toml tools/requirements.py | $(STAMPS)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	python3 tools/requirements.py dev > $(STAMPS)/requirements.txt
	$(PIP) install -q -r $(STAMPS)/requirements.txt
	$(PIP) install -q --no-deps --no-build-isolation -e clients/python -e orchestration
	@touch $@

$(STAMPS)/proto: $(STAMPS)/venv $(PROTOS) tools/gen_proto.sh
	tools/gen_proto.sh $(PY)
	@touch $@

$(STAMPS)/native-$(PROFILE): $(STAMPS)/venv $(RUST_SRC)
	rm -f python/nexus/_native*.so
	VIRTUAL_ENV=$(abspath $(VENV)) $(VENV)/bin/maturin develop $(if $(filter release,$(PROFILE)),--release,) -q
	@rm -f $(STAMPS)/native-*
	@touch $@

$(BUF):
	npm install --silent --no-audit --no-fund --prefix .tools @bufbuild/buf@$(BUF_VERSION)

.PHONY: install
install: $(STAMPS)/venv $(STAMPS)/proto $(STAMPS)/native-$(PROFILE) $(BUF) ## Install everything into .venv/ and .tools/ (idempotent)

.PHONY: proto
proto: $(STAMPS)/venv ## Regenerate Python code from proto/ (python/nexus/*/v1, not committed)
	tools/gen_proto.sh $(PY)
	@touch $(STAMPS)/proto

.PHONY: build-dev
build-dev: ## Build the native module with the dev profile
	$(MAKE) PROFILE=dev $(STAMPS)/native-dev

.PHONY: build-release
build-release: ## Build the native module with the release profile
	$(MAKE) PROFILE=release $(STAMPS)/native-release

.PHONY: run
run: install ## Run Nexus: the embedded system (all services, paper mode) on 127.0.0.1:50051
	NEXUS_EXECUTION__ORDER_GATEWAY_PORT=$${NEXUS_EXECUTION__ORDER_GATEWAY_PORT-50052} $(VENV)/bin/nexus serve

.PHONY: test
test: install ## Run every test: Rust, Python unit and integration
	$(MAKE) test-rust
	$(MAKE) test-python

.PHONY: test-rust
test-rust: ## Run the Rust tests (cargo test)
	cargo test --workspace --all-features --quiet

.PHONY: test-python
test-python: install ## Run the Python tests (pytest: tests/unit, tests/integration)
	$(PY) -m pytest

.PHONY: lint
lint: install ## ruff, mypy (+ stubtest), rustfmt --check, clippy -D warnings, buf lint, buf breaking
	$(VENV)/bin/ruff check $(PY_SRC_DIRS)
	$(VENV)/bin/ruff format --check $(PY_SRC_DIRS)
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy tests
	$(PY) -m mypy.stubtest nexus._native
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --all-features --quiet -- -D warnings
	$(BUF) lint
	$(MAKE) proto-breaking

.PHONY: proto-breaking
proto-breaking: $(BUF) ## buf breaking: the contracts against the main branch
	@if git rev-parse --verify -q main >/dev/null; then \
	  $(BUF) breaking --against '.git#branch=main'; \
	else echo "buf breaking: no main branch to compare against yet"; fi

.PHONY: format
format: install ## Format Python and Rust sources
	$(VENV)/bin/ruff format $(PY_SRC_DIRS)
	$(VENV)/bin/ruff check --fix $(PY_SRC_DIRS)
	cargo fmt --all

.PHONY: bench
bench: install quickfix-cpp ## Run the benchmarks (each prints its baseline and the ratio)
	$(VENV)/bin/nexus bench
	cargo bench --workspace --quiet

# The C++ QuickFIX harness the FIX benchmarks run beside Nexus (docs/benchmarks.md),
# against Debian's libquickfix-dev; installed by `make quickfix-cpp`, never by `make test`.
QUICKFIX_HEADER := /usr/include/quickfix/Message.h
QUICKFIX_CPP := target/quickfix-cpp/quickfix_bench
QUICKFIX_CXXFLAGS := -std=c++14 -O2 -Wall -Wextra -Wno-deprecated
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

$(QUICKFIX_HEADER):
	$(SUDO) apt-get install -y libquickfix-dev || \
	  { $(SUDO) apt-get update && $(SUDO) apt-get install -y libquickfix-dev; }

$(QUICKFIX_CPP): bench/quickfix_cpp/quickfix_bench.cpp $(QUICKFIX_HEADER)
	@mkdir -p $(@D)
	$(CXX) $(QUICKFIX_CXXFLAGS) -o $@ $< -lquickfix -lpthread

.PHONY: quickfix-cpp
quickfix-cpp: $(QUICKFIX_CPP) ## Build the C++ QuickFIX benchmark harness (installs libquickfix-dev when missing)

.PHONY: clean
clean: ## Remove build outputs and generated code (keeps .venv and caches; `make distclean` for all)
	cargo clean
	rm -rf $(STAMPS)/proto $(STAMPS)/native-* python/nexus/_native*.so
	rm -rf $(GEN_DIRS)
	find . -name __pycache__ -prune -exec rm -rf {} +

.PHONY: distclean
distclean: clean ## Also remove .venv, .tools and the stamps
	rm -rf $(VENV) .tools $(STAMPS)
