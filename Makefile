# wdmoe-opt: `make demo` and `make test` work on a fresh machine (Python 3.11).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-slow lint bench clean docs docs-check wheel-check

$(STAMP): pyproject.toml wdmoe_opt/bandwidth/_p3kernel.c wdmoe_opt/selection/_p2kernel.c \
		wdmoe_opt/_version.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,torch,docs]'
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

# The documentation site: user guide, API reference, CLI reference, executed gallery.
docs: $(STAMP)
	$(BIN)/python -m sphinx -W --keep-going -q -b html docs docs/_build/html
	@echo "site: docs/_build/html/index.html"

# Look at the built site: images, API and gallery pages, search; screenshots (Chromium).
docs-check: docs
	$(BIN)/python docs/check_site.py

# Build sdist + wheel and run the wheel alone in a fresh virtual environment.
wheel-check: $(STAMP)
	$(BIN)/python -m pytest -q -m slow tests/test_packaging.py

clean:
	rm -rf $(VENV) demo-out .pytest_cache .hypothesis docs/_build docs/generated docs/auto_examples \
		report-check

# A small bench, its report, and the page opened in headless Chromium: look at
# report-check/report.png (skipped with a message where there is no Chromium).
.PHONY: report-check
report-check: $(STAMP)
	$(BIN)/python -m wdmoe_opt bench --instances instances --tiers tiny --limit 3 \
		--solvers topk-uniform,alg1-exact,topk-exact,p3-exact --jobs 2 --out report-check/runs
	$(BIN)/python -m wdmoe_opt report report-check/runs --out report-check/report \
		--no-update-index
	$(BIN)/python -m wdmoe_opt.harness.screenshot report-check/report/index.html \
		report-check/report.png
