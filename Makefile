# tunedag: `make run` runs the whole pipeline, `make test` runs the tests.
# Both create the virtual environment in .venv when it is missing.
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
PYTHON ?= python3
STAMP := $(VENV)/.installed
export PATH := $(BIN):$(PATH)
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: install run pipeline worker stack test test-fast lint ui serve status bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

run: install  ## the whole pipeline on params.yaml, reproducibly, through DVC
	dvc repro

pipeline: install  ## the same stages in one Prefect flow run (what a schedule runs)
	tunedag run

worker: install  ## one more worker on the running study (same params.yaml; see docs/parallel.md)
	tunedag worker

stack: install  ## a local PostgreSQL, MLflow server and Dask cluster on 127.0.0.1, to try the distributed set-up
	python -m pip install --quiet -e ".[test]"
	python -m scripts.stack

# 3 test processes on 2 cores: the end-to-end tests wait on their subprocesses and servers part of the time.
# --dist loadfile keeps a file on one process: tests/flows/test_default_run.py's shared pipeline run happens once.
test: install lint  ## lint, then every test, the slow end-to-end ones included (about 10 minutes on 2 cores)
	python -m pytest -q -n 3 --dist loadfile

test-fast: install lint  ## lint, then the tests without the slow ones (end-to-end runs, servers, fresh interpreters): under 90 s
	python -m pytest -m "not slow" -q -n 3

lint: install  ## ruff check and ruff format --check (pyproject.toml holds their settings)
	ruff check .
	ruff format --check .

ui: install  ## the MLflow UI on http://127.0.0.1:5000, on the store params.yaml names
	tunedag ui

serve: install  ## the pipeline as a Prefect deployment on the cron schedule of params.yaml (docs/schedule.md)
	tunedag serve

status: install  ## the study for the current data, the last pipeline run, champion and challenger
	tunedag status

bench: install  ## per-trial overhead, layer by layer, against a bare Optuna loop (about 6 minutes; docs/performance.md)
	python benchmarks/overhead.py

clean:  ## remove pipeline outputs (keeps the MLflow store and the Optuna study)
	rm -rf data/prepared models reports metrics plots
