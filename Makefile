# pledgebot — developer commands. `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint install clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/pledgebot demo

test: $(STAMP)
	$(BIN)/ruff check bot tests bench
	$(BIN)/pytest -n 2 --dist loadfile -q

lint: $(STAMP)
	$(BIN)/ruff check bot tests bench
	$(BIN)/ruff format --check bot tests bench

bench: $(STAMP)
	$(BIN)/python bench/dispatch.py
	$(BIN)/python bench/fairness.py
	$(BIN)/python bench/sweep.py

clean:
	rm -rf $(VENV) demo-data .pytest_cache
