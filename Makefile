# Two entry points for a newcomer: `make run` (install + main job) and `make test`
# (install + default test suite). VENV may point outside the clone (CI caches it there).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEPKEY := $(shell $(PY) .ci/depkey.py)
STAMP := $(VENV)/.deps-$(DEPKEY)

.PHONY: install run test test-all bench clean

$(STAMP):
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -e '.[test]'
	touch $@

# The dependencies live in the (possibly cached) venv; the package itself is re-linked to
# this checkout every time, so a cached venv never runs another clone's code.
install: $(STAMP)
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .

run: install
	$(BIN)/python scripts/invert.py model=mnist_mlp

test: install
	$(BIN)/python -m pytest

# every test, the slow ones too, and the property tests under the thorough hypothesis profile
# (thousands of random generators per property; the counts print at the end)
test-all: install
	HYPOTHESIS_PROFILE=thorough $(BIN)/python -m pytest -m '' --hypothesis-show-statistics

bench: install
	$(BIN)/python benchmarks/bench_layerwise.py
	$(BIN)/python benchmarks/bench_auto.py
	$(BIN)/python benchmarks/bench_grad.py

clean:
	rm -rf $(VENV) build *.egg-info
