# Every target installs into ./.venv first if needed, so a fresh clone works.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test check fmt example bench bench-quick bench-setup bench-peers clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,all]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

check: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

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
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache demo.db
