# Every target installs into ./.venv first if needed, so a fresh clone works.
# Installs are pinned by requirements/dev.txt (compiled by uv from pyproject.toml); the
# package's own dependency ranges stay open and `make test-min` tests their lower bounds.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MIN_VENV := .venv-min
LOCK := requirements/dev.txt
MIN_LOCK := requirements/min.txt
UV_VERSION := 0.13.8
# The tools the lowest-bounds run needs besides the package: taken at their locked versions.
TEST_TOOLS := pytest pytest-asyncio pytest-timeout hypothesis aiosmtpd playwright greenlet pyee

.PHONY: install test test-min screenshots check fmt lock lock-upgrade example bench bench-quick bench-setup bench-peers clean

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c $(LOCK) -e '.[dev,all]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Retake the dashboard screenshots of docs/img/ (the browser tests; see docs/dashboard.md).
screenshots: $(STAMP)
	FLOWMONKEY_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/browser

# The runtime dependencies at the lowest versions pyproject.toml admits, the test tools
# at their locked versions.
test-min: $(STAMP)
	rm -rf $(MIN_VENV)
	$(PY) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/pip install -q --upgrade pip
	$(MIN_VENV)/bin/pip install -q -c $(MIN_LOCK) -e '.[all]'
	$(MIN_VENV)/bin/pip install -q $$(grep -E '^($(shell echo $(TEST_TOOLS) | tr ' ' '|'))==' $(LOCK))
	$(MIN_VENV)/bin/pip freeze | grep -iE '^(orjson|pyyaml|jmespath|jsonschema|psycopg|redis|click|rich|httpx|aiosmtplib)=='
	$(MIN_VENV)/bin/python -m pytest -q -p no:cacheprovider

check: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

fmt: $(STAMP)
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

# Re-resolve the locks from pyproject.toml, keeping every pin that still fits.
lock: $(STAMP)
	$(BIN)/pip install -q uv==$(UV_VERSION)
	$(BIN)/uv pip compile -q --no-header --python-version 3.11 pyproject.toml \
		--extra dev --extra all -o $(LOCK)
	$(BIN)/uv pip compile -q --no-header --python-version 3.11 pyproject.toml \
		--extra all --resolution lowest-direct -o $(MIN_LOCK)

# Move every pin to the newest release: a deliberate commit of its own.
lock-upgrade: $(STAMP)
	$(BIN)/pip install -q uv==$(UV_VERSION)
	$(BIN)/uv pip compile -q --no-header --python-version 3.11 pyproject.toml \
		--extra dev --extra all --upgrade -o $(LOCK)
	$(BIN)/uv pip compile -q --no-header --python-version 3.11 pyproject.toml \
		--extra all --resolution lowest-direct --upgrade -o $(MIN_LOCK)

example: $(STAMP)
	rm -f demo.db
	$(BIN)/flowmonkey --store sqlite:///demo.db run examples/order_processing/flow.yaml \
		--handlers examples/order_processing/handlers.py --input @examples/order_processing/input.json

bench: $(STAMP)
	$(BIN)/python -m bench all

bench-quick: $(STAMP)
	$(BIN)/python -m bench engine --quick

bench-setup: $(STAMP)
	bash bench/setup.sh

bench-peers: $(STAMP)
	$(BIN)/python -m bench peers

clean:
	rm -rf $(VENV) $(MIN_VENV) .pytest_cache .mypy_cache .ruff_cache demo.db
