# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is pinned for development and CI: its CPU wheel is on this machine's disk.
TORCH_PIN := torch==2.13.0

.PHONY: venv demo test bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/pip install --quiet $(TORCH_PIN)
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

venv: $(VENV)/.installed

test: venv
	$(BIN)/python -m pytest -q

demo: venv
	$(BIN)/python scripts/demo.py

bench: venv
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf $(VENV) out
