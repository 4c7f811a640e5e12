# `make demo` and `make test` work on a fresh machine with Python 3.11 and pip: they create .venv,
# install rnnimg with its extras, and run.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.rnnimg-installed

.PHONY: install demo test test-all lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,tensorboard,video,web,hub]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rnnimg demo --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" -n 2 --dist loadfile

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_rowrnn.py

clean:
	rm -rf $(VENV) runs/demo .pytest_cache
