# pledgebot — developer commands. `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint install clean bench axe

# The sandboxes and the demo are their own distribution (sandbox/pyproject.toml): installed here,
# never by a plain `pip install pledgebot`. The dev extra brings every other one (pledgebot[all]:
# each channel's library, charts, matchmaking, PostgreSQL, Redis): the demo and the tests use them.
$(STAMP): pyproject.toml sandbox/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -e ./sandbox
	touch $(STAMP)

install: $(STAMP)

# DEMO_ARGS, e.g. --channels telegram (no Synapse) or --pledgemakers 12; see `pledgebot demo --help`.
demo: $(STAMP)
	$(BIN)/pledgebot demo $(DEMO_ARGS)

# axe-core (accessibility checks in the browser tests) from the npm registry, when npm exists;
# without it those checks skip and say so (CI fails instead).
AXE := .cache/npm/node_modules/axe-core/axe.min.js

$(AXE):
	@if command -v npm >/dev/null 2>&1; then npm install --silent --no-audit --no-fund --prefix .cache/npm axe-core@4; \
	else echo "npm not found: the accessibility checks will be skipped"; fi

axe: $(AXE)

test: $(STAMP) axe
	$(BIN)/ruff check bot sandbox tests bench
	$(BIN)/mypy  # bot/, strict on delivery/ and channels/ ([tool.mypy]); cached: ~1-10 s warm, ~70 s cold
	$(BIN)/pledgebot i18n check --templates templates  # every template in en, fr, es; same variables
	$(BIN)/python -m pledgebot_sandbox.synapse  # Synapse's own venv for the Matrix tests (once, ~30 s)
	$(BIN)/pytest -n 2 --dist loadfile -q

lint: $(STAMP)
	$(BIN)/ruff check bot sandbox tests bench
	$(BIN)/ruff format --check bot sandbox tests bench

# Each bench prints one JSON line and one summary line on stdout (progress on stderr); about
# 7-8 minutes in all on an otherwise idle 2-core machine. BENCH_ARGS=--quick for a shorter run, --strict to fail on a miss.
bench: $(STAMP)
	$(BIN)/python bench/startup.py $(BENCH_ARGS)
	$(BIN)/python bench/fairness.py $(BENCH_ARGS)
	$(BIN)/python bench/throttled.py $(BENCH_ARGS)
	$(BIN)/python bench/sweep.py $(BENCH_ARGS)
	$(BIN)/python bench/ingest.py $(BENCH_ARGS)
	$(BIN)/python bench/import_lock.py $(BENCH_ARGS)
	$(BIN)/python bench/dispatch.py $(BENCH_ARGS)
	$(BIN)/python bench/dashboard.py $(BENCH_ARGS)
	$(BIN)/python bench/matchmaking.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) demo-data .pytest_cache .cache test-artifacts
