# The two commands of the README, plus the pieces they are made of.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: run test install lint unit e2e clean

$(BIN)/luna-tasks: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

install: $(BIN)/luna-tasks

## run: start the embedded stack (PostgreSQL, Airflow, API) and cluster sample faces once it is up
run: install
	$(BIN)/luna-tasks standalone --demo

## test: lint, then every test (unit and end-to-end on one started stack)
test: install lint
	$(BIN)/python -m pytest -p no:cacheprovider

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit: install
	$(BIN)/python -m pytest -p no:cacheprovider tests/unit

e2e: install
	$(BIN)/python -m pytest -p no:cacheprovider tests/e2e

clean:
	rm -rf $(VENV) *.egg-info
