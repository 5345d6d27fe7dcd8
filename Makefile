# wdmoe-opt: `make demo` and `make test` work on a fresh machine (Python 3.11).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-slow lint bench clean

$(STAMP): pyproject.toml wdmoe_opt/bandwidth/_p3kernel.c
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,torch]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	@mkdir -p demo-out
	$(BIN)/wdmoe-opt generate wdmoe-sim --seed 0 -o demo-out/wdmoe-sim.json
	$(BIN)/wdmoe-opt solve demo-out/wdmoe-sim.json --selection topk --bandwidth uniform \
		-o demo-out/topk-uniform.solution.json
	$(BIN)/wdmoe-opt check demo-out/wdmoe-sim.json demo-out/topk-uniform.solution.json
	@echo "--- the paper's WDMoE (Algorithm 1 + optimal bandwidth) on the same instance:"
	$(BIN)/wdmoe-opt solve demo-out/wdmoe-sim.json --selection alg1 --bandwidth exact --brief \
		-o demo-out/alg1-exact.solution.json
	$(BIN)/wdmoe-opt check demo-out/wdmoe-sim.json demo-out/alg1-exact.solution.json

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2

# The slow tests, and every hypothesis test drawing fresh, more examples.
test-slow: $(STAMP)
	HYPOTHESIS_PROFILE=randomized $(BIN)/python -m pytest -q -n 2 -m "slow or hypothesis"

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) demo-out .pytest_cache .hypothesis
