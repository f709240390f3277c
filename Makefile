# Two commands on a fresh machine: `make demo` and `make test`. Each sets up .venv when
# pyproject.toml or this Makefile is newer than the last install (torch first, so pip never
# pulls a CUDA build; the brevitas extra keeps that torch; ray runs the sweep test on Ray).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.nnloom-installed
OUT    ?= out
PYTEST_ARGS ?=

.PHONY: demo test test-fast test-slow lint venv clean

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "torch==2.13.0"
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[test,gowin,brevitas,ray]"
	@touch $@

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/nnloom example digits -o $(OUT)/models
	$(BIN)/nnloom flow $(OUT)/models/digits_mlp.onnx --engine gemm --board icebreaker -o $(OUT)/digits_mlp \
		--data $(OUT)/models/digits_test.npz --reference $(OUT)/models/digits_mlp_float.onnx

# ruff: the lint rules and the format in pyproject.toml (.ci/run runs it before the tests).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Every tier but `slow` (the Tang Nano 9K bitstream: about 3 minutes of nextpnr-gowin).
test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not sim and not synth" $(PYTEST_ARGS)

clean:
	rm -rf $(OUT) build sim_build .pytest_cache
