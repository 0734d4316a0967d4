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

# Each bench prints one JSON line and one summary line on stdout (progress on stderr); about
# 4-5 minutes in all on 2 cores. BENCH_ARGS=--quick for a shorter run, --strict to fail on a miss.
bench: $(STAMP)
	$(BIN)/python bench/startup.py $(BENCH_ARGS)
	$(BIN)/python bench/fairness.py $(BENCH_ARGS)
	$(BIN)/python bench/throttled.py $(BENCH_ARGS)
	$(BIN)/python bench/sweep.py $(BENCH_ARGS)
	$(BIN)/python bench/ingest.py $(BENCH_ARGS)
	$(BIN)/python bench/dispatch.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) demo-data .pytest_cache
