# Set-up is automatic: every target creates .venv and installs the project when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
REPORTS := reports

.PHONY: demo test lint bench bench-gpu clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	mkdir -p $(REPORTS)
	$(PY) -m pytest specs/ -p no:cacheprovider \
		--junitxml=$(REPORTS)/junit.xml \
		--robustness-json=$(REPORTS)/robustness.json \
		--robustness-html=$(REPORTS)/robustness.html

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile --durations=15

lint: $(STAMP)
	$(PY) -m ruff check robustness_checks tests benchmarks
	$(PY) -m ruff format --check robustness_checks tests benchmarks

bench: $(STAMP)
	$(PY) -m pytest benchmarks/ --benchmark-only -p no:xdist

bench-gpu: $(STAMP)
	$(PY) benchmarks/gpu_benchmark.py --out benchmarks/gpu_results.json

clean:
	rm -rf $(REPORTS) .pytest_cache .hypothesis .benchmarks
