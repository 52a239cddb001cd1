# The chains behind the low-resolution pose papers' tables and figures (CAL, SRPose, MGIL in
# ../../../shared/seeds/), shared by examples/related/Makefile (user-converted HRNet, SimCC and SR
# head weights) and examples/related/offline.mk (registry-shipped PoseNet and MoveNet). The
# including Makefile sets COCO, ANN, OUT, LRP, DEVICE and UDP_WEIGHTS (a folder, may be empty).
#
# A run is named MODEL@WxH@DECODE (e.g. hrnet-w32-64x48@48x64@dark): GT boxes on the original
# images, one document OUT/pose/RUN.json (OUT/argmax/RUN.json with --record-argmax). A crop-SR
# run is MODEL@WxH@DECODE@SR@CROPWxCROPH: each person crop is cut at the crop size and
# super-resolved by SR to the model input (CAL Table 2). Every step writes atomically (-o), so
# targets are parallel-safe (make -j) and resumable.

.SECONDARY:

ORIG_IN = --images $(COCO) $(ANN)
EVAL    = $(LRP) evaluate --format markdown
# $(call field,N,RUN): the Nth @-separated field of a run name
field   = $(word $(1),$(subst @, ,$(2)))
# UDP-trained weights are other weights than the standard ones: UDP_WEIGHTS/MODEL-udp.safetensors
udp_weights = $(if $(and $(filter udp,$(call field,3,$(1))),$(UDP_WEIGHTS)),--weights $(UDP_WEIGHTS)/$(call field,1,$(1))-udp.safetensors)
crop_sr     = $(if $(call field,4,$(1)),--crop-sr $(call field,4,$(1)) --crop-size $(call field,5,$(1)))
pose_args   = --model $(call field,1,$(1)) --input-size $(call field,2,$(1)) --decode $(call field,3,$(1)) $(call udp_weights,$(1)) $(call crop_sr,$(1))

poses   = $(foreach r,$(1),$(OUT)/pose/$(r).json)
argmax  = $(foreach r,$(1),$(OUT)/argmax/$(r).json)
labels  = $(foreach r,$(1),--label $(r))

$(OUT)/pose/%.json:
	@mkdir -p $(@D)
	$(LRP) pose -q $(call pose_args,$*) --boxes gt --device $(DEVICE) $(ORIG_IN) -o $@
$(OUT)/argmax/%.json:
	@mkdir -p $(@D)
	$(LRP) pose -q $(call pose_args,$*) --record-argmax --boxes gt --device $(DEVICE) $(ORIG_IN) -o $@

# $(call table,RUNS): one lrp evaluate table with a row per run (the recipe of a .md target)
table      = $(EVAL) $(call labels,$(1)) $(call poses,$(1)) > $@.part && mv $@.part $@
# $(call figure,RUNS,LINES): the table as `table` writes it, and beside it ($(@:.md=.png)) AP
# against each run's input size (CAL Fig. 1); LINES has a label per run, runs sharing one are a line
figure     = $(EVAL) $(foreach l,$(2),--label $(l)) $(call poses,$(1)) --plot $(@:.md=.png) --plot-x pose.input_size > $@.part && mv $@.part $@
# $(call histogram,RUNS): the argmax-to-GT displacement of each run, PNG + markdown table
histogram  = $(LRP) displacement --format markdown $(call labels,$(1)) $(call argmax,$(1)) --plot $@ > $(@:.png=.md).part && mv $(@:.png=.md).part $(@:.png=.md)
