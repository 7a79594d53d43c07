# Every target runs with the project's virtualenv first on PATH, so stage commands in
# dvc.yaml (`python stages/...`) use the pinned environment without activating it.
SHELL := /bin/bash
VENV := .venv
PYTHON ?= python3
EXTRAS := dev,s3,serve,report,distributed
# uv installs the ~180 pinned packages in seconds where pip takes minutes. It compiles their bytecode
# at install time (--compile-bytecode): with PYTHONDONTWRITEBYTECODE set, as on CI, every dvc and
# stage process would otherwise compile its imports from source, and the tests take twice as long.
UV_VERSION := 0.13.9
# The integration tests wait on dvc and git subprocesses: two processes keep both cores busy.
TEST_WORKERS ?= 2
UV := $(VENV)/bin/uv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: setup repro test lint format lock

## setup: create .venv with the pinned dependencies and pull the source data snapshot
setup: $(VENV)/.installed
	dvc pull data/source/rent_apartments.sqlite.dvc

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) pip install --quiet --compile-bytecode --python $(VENV)/bin/python -c requirements.lock -e ".[$(EXTRAS)]"
	touch $@

## repro: rebuild whatever in the pipeline is out of date
repro:
	dvc repro

## test: the whole test suite in TEST_WORKERS processes, each test file whole in one (CI runs exactly this)
test:
	python -m pytest -n $(TEST_WORKERS) --dist loadfile

## lint: static checks
lint:
	ruff check .
	ruff format --check .

## format: apply the formatter and safe lint fixes
format:
	ruff format .
	ruff check --fix .

## lock: re-resolve every dependency into requirements.lock (commit the result)
lock: $(VENV)/.installed
	$(UV) pip compile --quiet --upgrade pyproject.toml --all-extras --python-version 3.11 --output-file requirements.lock

.PHONY: notebook-strip
## notebook-strip: remove outputs from the notebooks (they are committed stripped; the tests check)
notebook-strip:
	python scripts/strip_notebook.py notebook/*.ipynb

.PHONY: push pull release
## push: send data and models to the DVC remote (REMOTE=name for another than the default)
push:
	python -m rentprice.remote push $(if $(REMOTE),--remote $(REMOTE))

## pull: fetch data and models from the DVC remote (REMOTE=name as for push)
pull:
	python -m rentprice.remote pull $(if $(REMOTE),--remote $(REMOTE))

## release: tag the up-to-date, pushed model as rent-model@vVERSION (make release VERSION=1.2.0)
release:
	python scripts/release.py --version "$(VERSION)" $(if $(REMOTE),--remote $(REMOTE))

.PHONY: sweep report verify
# Grid for `make sweep`: one `-S key=v1,v2` per axis (dvc exp run syntax); JOBS experiments at once.
GRID ?= -S 'train.n_estimators=100,300' -S 'train.max_features=0.33,0.5'
JOBS ?= 2
## sweep: queue the GRID as DVC experiments, run them JOBS at a time, fail on any failed run, rank by test MAE
sweep:
	python scripts/sweep.py --jobs $(JOBS) $(GRID)

# Revision `make report` compares the workspace with.
BASE ?= main
## report: write report.md (params and metrics diff against BASE, plots in report_plots/)
report:
	python scripts/report.py --base $(BASE) --output report.md --images report_plots

## verify: rebuild HEAD with `dvc repro -f` in a fresh clone; fail if dvc.lock or a tracked metric changes
verify:
	bash scripts/verify.sh

.PHONY: bench
## bench: batch scoring speed on synthetic 1M-row inputs, peak memory on 1M and 10M rows (about 6 minutes; needs the model)
bench:
	python bench/predict.py

.PHONY: serve bench-serve
# `make serve` listens on 127.0.0.1:PORT with WORKERS gunicorn processes (each loads the model once).
PORT ?= 8000
WORKERS ?= 2
## serve: the prediction service (JSON API and web page) under gunicorn on 127.0.0.1:PORT; needs the model
serve:
	gunicorn -c python:rentprice.service.gunicorn_conf --bind 127.0.0.1:$(PORT) --workers $(WORKERS)

## bench-serve: service latency in process and requests/s, p50/p99 under gunicorn on loopback (about a minute; needs the model)
bench-serve:
	python bench/serve.py

.PHONY: image image-smoke
# The service's container image (README, Container image). CONTAINER_ENGINE=docker|podman picks the
# engine (default: docker when its daemon answers, else podman).
IMAGE ?= rentprice:latest
## image: build the service's container image IMAGE, after `dvc repro evaluate` brings the model and its metrics up to date
image:
	dvc repro evaluate
	bash container/image.sh build $(IMAGE)

## image-smoke: run IMAGE on loopback, wait for health, compare its predictions with the in-process model, remove it
image-smoke:
	bash container/image.sh smoke $(IMAGE)
