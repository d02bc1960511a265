# systolix: `make demo` runs the main job, `make test` runs the test suite.
# Both do all set-up themselves (idempotent `make setup`): a .venv with pinned packages and,
# when missing, Debian's iverilog (plus make/g++ for Verilator builds, python3-venv).

VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.systolix-installed
PYTEST := $(PY) -m pytest
APT    := DEBIAN_FRONTEND=noninteractive apt-get

.PHONY: setup sysdeps demo test test-slow test-all lint generate models bench bench-engine-synth clean

setup: sysdeps $(STAMP)

sysdeps:
	@missing=""; \
	command -v iverilog >/dev/null || missing="$$missing iverilog"; \
	command -v g++ >/dev/null || missing="$$missing g++"; \
	command -v make >/dev/null || missing="$$missing make"; \
	python3 -c "import ensurepip, venv" 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "setup: need$$missing; run as root or install them" >&2; exit 1; fi; \
	  echo "setup: installing$$missing"; \
	  $(APT) update -qq && $(APT) install -y -qq $$missing >/dev/null; \
	fi

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

demo: setup
	$(VENV)/bin/systolix demo

# (-n auto: pytest-xdist runs the tests on every core; each worker builds into its own
# sim_out/tests/<worker> and all share the session's random seed)
XDIST  := -n auto --dist worksteal

test: setup
	$(PYTEST) $(XDIST) -m "not slow"

test-slow: setup
	$(PYTEST) $(XDIST) -m slow

test-all: setup
	$(PYTEST) $(XDIST)

lint: setup
	$(PYTEST) tests/emit/test_lint.py

# Benchmarks (tens of minutes; results in bench/results/). The FPGA sweeps are separate:
# `nice .venv/bin/python bench/synth_bench.py` takes hours (the 156-DSP design alone ~40 min).
bench: setup
	$(PY) bench/engine_bench.py
	$(PY) bench/engine_stream_bench.py
	$(PY) bench/infer_bench.py
	$(PY) bench/compare_bench.py
	$(PY) bench/onnx_bench.py

# The shipped digits CNN (gen/systolix/apps/models/): trained in numpy, quantized by onnxruntime.
models: setup
	$(PY) -m systolix.apps.cnn

# Engines on the FPGAs, old options against new (hours: 48 place-and-route runs, 2 at a time;
# results in bench/results/engine_synth.{json,md}; ONLY="ecp5-85f os 8x8" selects rows).
bench-engine-synth: setup
	nice $(PY) bench/engine_synth_bench.py $(if $(ONLY),--only "$(ONLY)")

# The demo's designs, committed under rtl/ (a test checks they are current).
generate: setup
	$(VENV)/bin/systolix generate systolic --rows 8 --cols 8 -o rtl
	$(VENV)/bin/systolix generate engine --rows 8 --cols 8 --dataflow os -o rtl
	$(VENV)/bin/systolix generate engine --rows 8 --cols 8 --dataflow ws -o rtl

clean:
	rm -rf sim_out/*/ .pytest_cache
