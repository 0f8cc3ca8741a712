# uicap: every target installs what it needs first; running a target twice redoes nothing.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is installed first and pinned, so pip never resolves another multi-GB build.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
TORCH_STAMP := $(VENV)/.torch-$(shell printf '%s' '$(TORCH_SPEC)' | md5sum | cut -c1-10)
INSTALL_STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install test lint format java clean help

help:
	@echo "make install   create .venv with uicap and its dev/train extras"
	@echo "make test      install when needed, then run the test suite"
	@echo "make lint      ruff check + format check"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(TORCH_STAMP): | $(PY)
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	rm -f $(VENV)/.torch-* && touch $@

$(INSTALL_STAMP): pyproject.toml $(TORCH_STAMP)
	$(PY) -m pip install --quiet -e '.[dev,train]'
	touch $@

# pycocoevalcap's METEOR and PTB tokenizer run on Java.
java:
	@command -v java >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq default-jre-headless >/dev/null; }

install: $(INSTALL_STAMP) java

test: install
	MLFLOW_DISABLE_TELEMETRY=true $(VENV)/bin/pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
