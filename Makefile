# Two entry points for a newcomer: `make demo` and `make test` (see README.md).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, from the CPU build: a bare torch requirement would pull CUDA wheels.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	# torchvision has only CUDA builds here and breaks transformers when present.
	! $(BIN)/python -m pip show -q torchvision 2>/dev/null
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/vlmr1 demo

test: $(STAMP)
	# pytest exits 5 when it collects nothing: that is a failure here, not a pass.
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/rewards.py
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/quality.py
	$(BIN)/python benchmarks/scoring.py --samples 64 --max-new-tokens 128 --batch 32
	$(BIN)/python benchmarks/shards.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
