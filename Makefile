# Two commands do everything on a fresh machine (Python 3.11+ and make):
#   make demo   run the main job on the bundled default config
#   make test   lint, type-check, check the layers and run the whole test suite
# Each bootstraps .venv (created if missing, reused if present).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint pytest bench bench-quick clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "lobsim needs Python 3.11 or newer; set PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lobsim terms configs/birmingham_jsa.toml
	$(BIN)/lobsim run configs/birmingham_jsa.toml

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/mypy
	$(BIN)/lint-imports

# Two workers (pytest-xdist; tests/conftest.py compiles numba's kernels before they
# start): TEST_WORKERS=0 runs the suite in one process, TEST_WORKERS=auto on every core.
TEST_WORKERS ?= 2

pytest: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

test: lint pytest

# The benchmark suite (benchmarks/README.md): pytest-benchmark, then the report
# benchmarks/results/REPORT.md (the table "Issue 16 targets" first) with its plots.
# bench-quick: smaller sizes (a 1,000,000-scenario streamed run for the memory target).
BENCH_STAMP := $(VENV)/.bench-stamp
BENCH_JSON  := benchmarks/results/benchmarks.json

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m pytest benchmarks -p no:cacheprovider -q --benchmark-json=$(BENCH_JSON)
	$(BIN)/python benchmarks/report.py $(BENCH_JSON) --command 'make bench'

bench-quick: $(BENCH_STAMP)
	$(BIN)/python -m pytest benchmarks -p no:cacheprovider -q --quick --benchmark-json=$(BENCH_JSON)
	$(BIN)/python benchmarks/report.py $(BENCH_JSON) --command 'make bench-quick'

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
