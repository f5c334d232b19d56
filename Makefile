# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint bench docs clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned: 2.13.0 resolves to the CPU wheel; an open range pulls CUDA.
	$(PY) -m pip install --quiet torch==2.13.0
	# setuptools' generic note on editable installs is silenced; the data folders are declared
	# packages (setup.cfg), so nothing else is left to warn about
	PYTHONWARNINGS=ignore $(PY) -m pip install --quiet -e '.[dev,research]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/s4trade demo --out runs/demo

test: $(STAMP)
	$(PY) -m pytest -q

# The same suite without the end-to-end checks (marked `slow`): the inner loop.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# The documentation site (mkdocs-material), built strictly into site/; `mkdocs serve` to read it.
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) scripts/bench_ssm.py
	$(PY) scripts/bench_backtest.py
	$(PY) scripts/bench_research.py
	$(PY) scripts/bench_live.py

clean:
	rm -rf $(VENV) runs build site *.egg-info
