# The two set-up commands of the README: `make demo` and `make test`.
# Both install everything they need into .venv first (idempotent).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT ?= runs/demo
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install test demo lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,eval]"
	touch $(STAMP)

test: install
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -n 2 --dist loadfile --timeout 1200 tests --nbmake notebooks $(PYTEST_ARGS)

demo: install
	$(VENV)/bin/braindecode-kit demo --out $(OUT)

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) runs build dist .pytest_cache
