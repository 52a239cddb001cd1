# The chains of lrp commands behind the paper's tables and figures, shared by
# examples/paper/Makefile (official weights) and examples/offline/Makefile (registry-shipped
# weights). The including Makefile sets COCO, ANN, OUT, LRP, DEVICE, DETECTOR, MASKER, MIX_SR,
# MIX_AREAS, POSE and SR. Every step writes its document atomically (-o) and its images to
# OUT/images/<stage>, so targets are parallel-safe (make -j) and resumable.
#
# Files: OUT/<stage>.json for image stages (lr2, lr4, sr2-<model>, sr4-<model>), and
# OUT/det/<stage>.json, OUT/gtpose/<stage>.json, OUT/e2e/<stage>.json for results on a stage.
# The original images are read in place (stage "orig", from the plain COCO file).

.SECONDEXPANSION:
.PHONY: all tables figures sanity $(addprefix table,1 2 3 4 5 6 7 8 9) $(addprefix figure,1 2 3)
.SECONDARY:

all: tables figures sanity
tables: table1 table2 table3 table4 table5 table6 table7 table8 table9
figures: figure1 figure2 figure3

ORIG_IN = --images $(COCO) $(ANN)
EVAL    = $(LRP) evaluate --format markdown

# ---- image stages ----------------------------------------------------------------------------
$(OUT)/lr2.json:
	@mkdir -p $(OUT)
	$(LRP) degrade -q --scale 0.5 $(ORIG_IN) --out-dir $(OUT)/images/lr2 -o $@
$(OUT)/lr4.json:
	@mkdir -p $(OUT)
	$(LRP) degrade -q --scale 0.25 $(ORIG_IN) --out-dir $(OUT)/images/lr4 -o $@
$(OUT)/sr2-%.json: $(OUT)/lr2.json
	$(LRP) superres -q --model $* --scale 4 --device $(DEVICE) $< --out-dir $(OUT)/images/sr2-$* -o $@
$(OUT)/sr4-%.json: $(OUT)/lr4.json
	$(LRP) superres -q --model $* --scale 4 --device $(DEVICE) $< --out-dir $(OUT)/images/sr4-$* -o $@

# ---- results on a stage ----------------------------------------------------------------------
$(OUT)/det/orig.json:
	@mkdir -p $(@D)
	$(LRP) detect -q --model $(DETECTOR) --device $(DEVICE) $(ORIG_IN) -o $@
$(OUT)/gtpose/orig.json:
	@mkdir -p $(@D)
	$(LRP) pose -q --model $(POSE) --boxes gt --device $(DEVICE) $(ORIG_IN) -o $@
$(OUT)/det/%.json: $(OUT)/%.json
	@mkdir -p $(@D)
	$(LRP) detect -q --model $(DETECTOR) --device $(DEVICE) $< -o $@
$(OUT)/gtpose/%.json: $(OUT)/%.json
	@mkdir -p $(@D)
	$(LRP) pose -q --model $(POSE) --boxes gt --device $(DEVICE) $< -o $@
$(OUT)/e2e/%.json: $(OUT)/det/%.json
	@mkdir -p $(@D)
	$(LRP) pose -q --model $(POSE) --boxes detections --device $(DEVICE) $< -o $@

# $(call stages,KIND,SCALE): the LR stage then each SR stage, e.g. det/lr2.json det/sr2-bicubic.json ...
stages = $(OUT)/$(1)/lr$(2).json $(foreach m,$(SR),$(OUT)/$(1)/sr$(2)-$(m).json)

# ---- tables ------------------------------------------------------------------------------------
$(OUT)/table1.md: $(OUT)/det/orig.json
	$(EVAL) $^ > $@.part && mv $@.part $@
$(OUT)/table2.md: $(call stages,det,2)
	$(EVAL) --size-from $(OUT)/lr2.json $^ > $@.part && mv $@.part $@
$(OUT)/table3.md: $(call stages,det,4)
	$(EVAL) --size-from $(OUT)/lr4.json $^ > $@.part && mv $@.part $@
$(OUT)/table4.md: $(OUT)/gtpose/orig.json
	$(EVAL) $^ > $@.part && mv $@.part $@
$(OUT)/table5.md: $(call stages,gtpose,2)
	$(EVAL) --size-from $(OUT)/lr2.json $^ > $@.part && mv $@.part $@
$(OUT)/table6.md: $(call stages,gtpose,4)
	$(EVAL) --size-from $(OUT)/lr4.json $^ > $@.part && mv $@.part $@
$(OUT)/table7.md: $(call stages,e2e,2)
	$(EVAL) --size-from $(OUT)/lr2.json $^ > $@.part && mv $@.part $@
$(OUT)/table8.md: $(call stages,e2e,4)
	$(EVAL) --size-from $(OUT)/lr4.json $^ > $@.part && mv $@.part $@

# Table 9: the mask detector on the MIX_SR image of the 1/2 set; people at or below 3500 px^2
# (LR frame) take SR keypoints, the others keypoints from the LR image in the mapped-back box.
$(OUT)/mix/sr.json: $(OUT)/sr2-$(MIX_SR).json
	@mkdir -p $(@D)
	$(LRP) detect -q --model $(MASKER) --device $(DEVICE) $< | $(LRP) pose -q --model $(POSE) --boxes detections --device $(DEVICE) -o $@
$(OUT)/mix/lr.json: $(OUT)/mix/sr.json $(OUT)/lr2.json
	$(LRP) mix --boxes-only $^ | $(LRP) pose -q --model $(POSE) --boxes detections --device $(DEVICE) -o $@
$(OUT)/mix/mixed.json: $(OUT)/mix/sr.json $(OUT)/mix/lr.json
	$(LRP) mix -q --threshold 3500 --area-frame lr --areas $(MIX_AREAS) $^ -o $@
$(OUT)/table9.md: $(OUT)/e2e/lr2.json $(OUT)/e2e/sr2-$(MIX_SR).json $(OUT)/mix/mixed.json
	$(EVAL) --size-from $(OUT)/lr2.json $^ > $@.part && mv $@.part $@

# Sanity: the ground truth as predictions must score AP 1.0 in every frame (catches any step
# that moves annotations wrongly).
$(OUT)/sanity.md: $(OUT)/lr2.json $(OUT)/lr4.json $(foreach m,$(SR),$(OUT)/sr2-$(m).json $(OUT)/sr4-$(m).json)
	$(EVAL) --oracle $^ > $@.part && mv $@.part $@

# ---- figures: % change per area subgroup (24 buckets) against the LR baseline ----------------
$(OUT)/figure1-%.png: $$(call stages,det,$$*)
	$(LRP) bucket --format markdown --baseline $< $(wordlist 2,99,$^) --plot $@ > $(OUT)/figure1-$*.md
$(OUT)/figure2.png: $(call stages,gtpose,2)
	$(LRP) bucket --format markdown --baseline $< $(wordlist 2,99,$^) --plot $@ > $(OUT)/figure2.md
$(OUT)/figure3.png: $(call stages,gtpose,4)
	$(LRP) bucket --format markdown --baseline $< $(wordlist 2,99,$^) --plot $@ > $(OUT)/figure3.md

$(addprefix table,1 2 3 4 5 6 7 8 9): table%: $(OUT)/table%.md
	@cat $<
sanity: $(OUT)/sanity.md
	@cat $<
figure1: $(OUT)/figure1-2.png $(OUT)/figure1-4.png
figure2: $(OUT)/figure2.png
figure3: $(OUT)/figure3.png
