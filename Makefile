# Every target runs with the project's virtualenv first on PATH, so stage commands in
# dvc.yaml (`python stages/...`) use the pinned environment without activating it.
SHELL := /bin/bash
VENV := .venv
PYTHON ?= python3
EXTRAS := dev,s3,serve,report
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: setup repro test lint format lock clean-venv

## setup: create .venv with the pinned dependencies and pull the source data snapshot
setup: $(VENV)/.installed
	dvc pull data/source/rent_apartments.sqlite.dvc

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet -c requirements.lock -e ".[$(EXTRAS)]"
	touch $@

## repro: rebuild whatever in the pipeline is out of date
repro:
	dvc repro

## test: the whole test suite (CI runs exactly this)
test:
	python -m pytest

## lint: static checks
lint:
	ruff check .
	ruff format --check .

## format: apply the formatter and safe lint fixes
format:
	ruff format .
	ruff check --fix .

## lock: re-resolve every dependency into requirements.lock (slow; commit the result)
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet -e ".[$(EXTRAS)]"
	.lock-venv/bin/python -m pip freeze --exclude-editable > requirements.lock
	rm -rf .lock-venv
