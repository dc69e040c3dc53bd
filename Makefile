# Two entry points for a newcomer: `make demo` and `make test` (see README.md).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Headless Chromium (Debian's package): `vlmr1 review`'s page is tested in it.
CHROMIUM := $(shell command -v chromium 2>/dev/null)
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# pytest-xdist workers for `make test` (docs/tests.md: what 2 and 3 measured)
WORKERS ?= 2
# vLLM in a venv of its own (its pins clash with ours): the vllm and vllm-server engines and their tests use it.
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed

.PHONY: install vllm chromium demo lint docs test bench serve clean

chromium:
ifeq ($(CHROMIUM),)
	$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium > /dev/null
endif

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, from the CPU build: a bare torch requirement would pull CUDA wheels.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	# torchvision has only CUDA builds here and breaks transformers when present.
	! $(BIN)/python -m pip show -q torchvision 2>/dev/null
	# DeepSpeed's CPU op, compiled once per environment now rather than by the first training run (60-120 s).
	$(BIN)/python -m training.extensions 2>&1 | tail -1
	touch $(STAMP)

install: $(STAMP)

# About 4.5 min and 2.5 GB from scratch; pip's chatter goes to .venv-vllm.log, shown when the build fails.
$(VLLM_STAMP): scripts/vllm_venv.sh
	scripts/vllm_venv.sh $(VLLM_VENV) $(PY) > $(VLLM_VENV).log 2>&1 || { tail -30 $(VLLM_VENV).log; exit 1; }
	tail -1 $(VLLM_VENV).log
	touch $(VLLM_STAMP)

vllm: $(VLLM_STAMP)

demo: $(STAMP)
	$(BIN)/vlmr1 demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The reference as a site (mkdocs-material) in site/; --strict: a broken link fails (never with --quiet, which hides
# the warnings --strict counts).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

test: $(STAMP) $(VLLM_STAMP) chromium lint docs
	# pytest exits 5 when it collects nothing: that is a failure here, not a pass. Two workers, one test module
	# each at a time, the long modules first (tests/conftest.py; --no-loadscope-reorder: xdist would otherwise
	# hand out the modules with the most tests first, and a three-test module of five minutes came last).
	$(BIN)/python -m pytest -q -n $(WORKERS) --dist loadfile --no-loadscope-reorder --durations=20

bench: $(STAMP)
	$(BIN)/python benchmarks/rewards.py
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/quality.py
	$(BIN)/python benchmarks/scoring.py --samples 64 --max-new-tokens 128 --batch 32
	$(BIN)/python benchmarks/shards.py
	$(BIN)/python benchmarks/flows.py

# A local Prefect server (own PREFECT_HOME, SQLite, 127.0.0.1), a process work pool, the deployments of
# prefect.yaml and a worker in the foreground (Ctrl-C stops the worker, then the server).
PREFECT_PORT ?= 4200
serve: $(STAMP)
	mkdir -p .prefect-home
	export PREFECT_HOME=$$PWD/.prefect-home PREFECT_SERVER_ANALYTICS_ENABLED=false PREFECT_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api VLMR1_REPO=$$PWD; \
	$(BIN)/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT) > .prefect-home/server.log 2>&1 & server=$$!; \
	trap 'kill -INT $$server; wait $$server' EXIT; \
	until curl -sf http://127.0.0.1:$(PREFECT_PORT)/api/health > /dev/null; do sleep 1; done; \
	$(BIN)/prefect work-pool create vlmr1-process --type process --overwrite > /dev/null; \
	$(BIN)/prefect --no-prompt deploy --all; \
	echo "run: PREFECT_API_URL=$$PREFECT_API_URL $(BIN)/prefect deployment run 'curate-and-train/demo' --watch"; \
	$(BIN)/prefect worker start --pool vlmr1-process

# Generated trees too: the demo's and the walk-through's outputs (demo-out/), benchmark outputs, the local server's home.
clean:
	rm -rf $(VENV) $(VLLM_VENV) $(VLLM_VENV).log .pytest_cache .hypothesis .prefect-home demo-out out bench-out \
		site .ruff_cache *.egg-info
