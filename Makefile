# Every target runs with the project's virtualenv first on PATH, so stage commands in
# dvc.yaml (`python stages/...`) use the pinned environment without activating it.
SHELL := /bin/bash
VENV := .venv
PYTHON ?= python3
EXTRAS := pipeline,serve,s3,postgres,distributed,report,dev
# uv installs the ~180 pinned packages in seconds where pip takes minutes. It compiles their bytecode
# at install time (--compile-bytecode): with PYTHONDONTWRITEBYTECODE set, as on CI, every dvc and
# stage process would otherwise compile its imports from source, and the tests take twice as long.
UV_VERSION := 0.13.9
# The integration tests wait on dvc and git subprocesses: two processes keep both cores busy.
TEST_WORKERS ?= 2
UV := $(VENV)/bin/uv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: setup repro test test-committed-params lint format lock

## setup: create .venv with the pinned dependencies and pull the source data snapshot
setup: $(VENV)/.installed
	dvc pull --remote source data/source/rent_apartments.sqlite.dvc

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) pip install --quiet --compile-bytecode --python $(VENV)/bin/python -c requirements.lock -e ".[$(EXTRAS)]"
	touch $@

## repro: rebuild whatever in the pipeline is out of date
repro:
	dvc repro

## test: the test suite in TEST_WORKERS processes, each test file whole in one (CI runs exactly this)
test:
	python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not committed_params"

## test-committed-params: the params-dependent tests again after committing other params (about 1.5 minutes; CI runs it after make test)
test-committed-params:
	python -m pytest -m committed_params tests/integration/test_committed_params.py

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

.PHONY: notebook-strip notebook-check
NOTEBOOKS ?= notebook/*.ipynb
# nbstripout keeps the cell ids (so a new cell leaves the others' ids alone) and also drops the
# kernel's language_info (Python version etc.), so a run on another interpreter diffs clean.
NBSTRIPOUT := nbstripout --keep-id --extra-keys metadata.language_info
## notebook-strip: remove outputs from the notebooks (they are committed stripped; the tests check)
notebook-strip:
	$(NBSTRIPOUT) $(NOTEBOOKS)

## notebook-check: fail if a notebook has outputs or execution records (changes nothing)
notebook-check:
	$(NBSTRIPOUT) --verify $(NOTEBOOKS)

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
GRID ?= -S 'train.catboost.depth=4,6' -S 'train.catboost.learning_rate=0.05,0.1'
JOBS ?= 2
## sweep: queue the GRID as DVC experiments, run them JOBS at a time, fail on any failed run, rank by grouped-CV MAE
sweep:
	python scripts/sweep.py --jobs $(JOBS) $(GRID)

# Revision `make report` compares the workspace with.
BASE ?= main
## report: write report.md (params and metrics diff against BASE, plots in report_plots/)
report:
	python scripts/report.py --base $(BASE) --output report.md --images report_plots

# The reproducibility check (also part of `make test`): a copy of the tracked files with an empty
# DVC cache pulls the source and runs `dvc repro`; a second `dvc repro` must run nothing.
VERIFY_TESTS := $(addprefix tests/integration/test_pipeline.py::,test_fresh_build_matches_the_committed_lock_and_metrics test_second_repro_does_nothing)
## verify: rebuild the tracked files in a fresh copy; fail unless dvc.lock, metrics and plots come out byte for byte
verify:
	python -m pytest -p no:cacheprovider -q $(VERIFY_TESTS)

.PHONY: bench
## bench: batch scoring speed on synthetic 1M-row inputs, peak memory on 1M and 10M rows (about 6 minutes; needs the model)
bench:
	python bench/predict.py

.PHONY: serve bench-serve
# `make serve`: nginx on 127.0.0.1:PORT in front of WORKERS gunicorn processes (docs/service.md).
PORT ?= 8000
WORKERS ?= 2
## serve: the prediction service (JSON API and web page) on 127.0.0.1:PORT, nginx before gunicorn; needs the model and nginx
serve:
	python -m rentprice.service.serve --bind 127.0.0.1:$(PORT) --workers $(WORKERS)

## bench-serve: service latency, load, slow clients, overload and retraining while serving, on loopback (about 3 minutes; needs the model)
bench-serve:
	python bench/serve.py

.PHONY: image image-smoke
# The service's container image (docs/container.md). CONTAINER_ENGINE=docker|podman picks the
# engine (default: docker when its daemon answers, else podman).
IMAGE ?= rentprice:latest
## image: build the service's container image IMAGE, after `dvc repro evaluate` brings the model and its metrics up to date
image:
	dvc repro evaluate
	bash container/image.sh build $(IMAGE)

## image-smoke: run IMAGE on loopback, wait for health, compare its predictions with the in-process model, remove it
image-smoke:
	bash container/image.sh smoke $(IMAGE)
