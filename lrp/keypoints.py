"""Keypoint sets as data: names, flip pairs, skeleton and OKS sigmas of the sets lrp knows.

A document says which set its people use through the person category (DESIGN.md section 1):
`keypoints` (names, in order) and `skeleton` (1-based pairs) as COCO writes them, and an `lrp`
field with `set`, the 0-based `flip_pairs` and the OKS `sigmas` (null where the protocol defines
none). `find_set` recognises a category by its keypoint names alone, so plain COCO, CrowdPose,
MPII (converted to COCO style) and PoseTrack files work as they come. No torch here.

Sources: COCO-17 and its sigmas from pycocotools / the COCO keypoints task; CrowdPose-14 names
and sigmas from the official crowdpose-api (`crowdpose_val.json`, `cocoeval.py`; its files carry
COCO's skeleton, which names joints 15-17 it does not have, so the skeleton here is the body tree
of its 14 joints); MPII-16 in the order of the official annotations (joint ids 0-15), which
define no OKS sigmas; PoseTrack-15 in the order of the official poseval `Joint` class (its
PCKh/mAP protocol defines no OKS sigmas either).
"""

from __future__ import annotations

from dataclasses import dataclass

from lrp.errors import LrpError


@dataclass(frozen=True)
class KeypointSet:
    name: str
    keypoints: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]  # 0-based (left, right) index pairs
    skeleton: tuple[tuple[int, int], ...]  # 1-based, as COCO categories write it
    sigmas: tuple[float, ...] | None  # OKS per-keypoint sigmas, None where undefined
    # Joints a protocol leaves out of its mean (MPII: pelvis and thorax).
    mean_excludes: tuple[str, ...] = ()

    def index(self, name: str) -> int:
        return self.keypoints.index(name)


def _pairs(names: tuple[str, ...], links: list[tuple[str, str]], base: int) -> tuple[tuple[int, int], ...]:
    return tuple((names.index(a) + base, names.index(b) + base) for a, b in links)


def _flips(names: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """Every left_* joint with its right_* twin (index pairs, left first)."""
    return tuple(
        (i, names.index("right_" + n[5:])) for i, n in enumerate(names) if n.startswith("left_") and "right_" + n[5:] in names
    )


def _make(name, keypoints, links, sigmas, mean_excludes=()):
    keypoints = tuple(keypoints)
    if sigmas is not None and len(sigmas) != len(keypoints):
        raise AssertionError(f"{name}: {len(sigmas)} sigmas for {len(keypoints)} keypoints")
    return KeypointSet(name, keypoints, _flips(keypoints), _pairs(keypoints, links, 1), sigmas, tuple(mean_excludes))


_LIMBS = [
    ("left_ankle", "left_knee"), ("left_knee", "left_hip"), ("right_ankle", "right_knee"), ("right_knee", "right_hip"),
    ("left_hip", "right_hip"), ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"),
    ("left_shoulder", "right_shoulder"), ("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow"),
    ("left_elbow", "left_wrist"), ("right_elbow", "right_wrist"),
]  # fmt: skip

COCO_17 = _make(
    "coco-17",
    ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
     "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
     "right_ankle"],
    # COCO's own skeleton, in its order.
    _LIMBS + [("left_eye", "right_eye"), ("nose", "left_eye"), ("nose", "right_eye"), ("left_eye", "left_ear"),
              ("right_eye", "right_ear"), ("left_ear", "left_shoulder"), ("right_ear", "right_shoulder")],
    tuple(s / 10.0 for s in (0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89)),
)  # fmt: skip

CROWDPOSE_14 = _make(
    "crowdpose-14",
    ["left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
     "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "head", "neck"],
    _LIMBS + [("head", "neck"), ("neck", "left_shoulder"), ("neck", "right_shoulder")],
    tuple(s / 10.0 for s in (0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89, 0.79, 0.79)),
)  # fmt: skip

MPII_16 = _make(
    "mpii-16",
    ["right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "pelvis", "thorax",
     "upper_neck", "head_top", "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow",
     "left_wrist"],
    [("right_ankle", "right_knee"), ("right_knee", "right_hip"), ("right_hip", "pelvis"), ("pelvis", "left_hip"),
     ("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("pelvis", "thorax"), ("thorax", "upper_neck"),
     ("upper_neck", "head_top"), ("right_wrist", "right_elbow"), ("right_elbow", "right_shoulder"),
     ("right_shoulder", "thorax"), ("thorax", "left_shoulder"), ("left_shoulder", "left_elbow"),
     ("left_elbow", "left_wrist")],
    None,
    mean_excludes=("pelvis", "thorax"),
)  # fmt: skip

POSETRACK_15 = _make(
    "posetrack-15",
    ["right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "right_wrist", "right_elbow",
     "right_shoulder", "left_shoulder", "left_elbow", "left_wrist", "neck", "nose", "head_top"],
    _LIMBS + [("neck", "left_shoulder"), ("neck", "right_shoulder"), ("neck", "nose"), ("nose", "head_top")],
    None,
)  # fmt: skip

SETS: dict[str, KeypointSet] = {s.name: s for s in (COCO_17, MPII_16, CROWDPOSE_14, POSETRACK_15)}


def get_set(name: str) -> KeypointSet:
    from lrp.errors import UsageError

    if name not in SETS:
        raise UsageError(f"unknown keypoint set {name!r}; known: {', '.join(SETS)}")
    return SETS[name]


def find_set(category: dict) -> KeypointSet | None:
    """The set whose keypoint names are the category's, in the same order (None: no known set)."""
    names = tuple(category.get("keypoints") or ())
    for s in SETS.values():
        if s.keypoints == names:
            return s
    return None


def category_set(doc: dict, name: str = "document", expect: str | None = None) -> KeypointSet:
    """The keypoint set of the document's person category; `expect` names the one a step needs."""
    from lrp.document import person_category_id

    cat_id = person_category_id(doc)
    index, cat = next((i, c) for i, c in enumerate(doc["categories"]) if c["id"] == cat_id)
    found = find_set(cat)
    declared = (cat.get("lrp") or {}).get("set")
    if found is None:
        n = len(cat.get("keypoints") or ())
        raise LrpError(f"{name}: categories[{index}].keypoints ({n} names) are none of the known sets: {', '.join(SETS)}")
    if declared is not None and declared != found.name:
        raise LrpError(f"{name}: categories[{index}].lrp.set says {declared!r} but its keypoint names are {found.name}'s")
    if expect is not None and found.name != expect:
        raise LrpError(f"{name}: categories[{index}].keypoints are {found.name}, not the {expect} this needs")
    return found


def category_lrp(s: KeypointSet) -> dict:
    """The `lrp` field of a person category: the set's name, 0-based flip pairs, OKS sigmas."""
    return {"set": s.name, "flip_pairs": [list(p) for p in s.flip_pairs], "sigmas": None if s.sigmas is None else list(s.sigmas)}


def person_category(s: KeypointSet, category_id: int = 1) -> dict:
    """A complete COCO person category for the set, with its `lrp` field."""
    return {
        "id": category_id, "name": "person", "supercategory": "person", "keypoints": list(s.keypoints),
        "skeleton": [list(p) for p in s.skeleton], "lrp": category_lrp(s),
    }


def flip_index(s: KeypointSet) -> list[int]:
    """Joint i of a mirrored crop is joint flip_index[i] of the crop (left and right swapped)."""
    index = list(range(len(s.keypoints)))
    for a, b in s.flip_pairs:
        index[a], index[b] = b, a
    return index


def names_keypoints(doc: dict) -> bool:
    """Whether the document's person category lists keypoint names."""
    from lrp.document import person_category_id

    cat_id = person_category_id(doc)
    return any(c["id"] == cat_id and c.get("keypoints") for c in doc["categories"])


def document_set(doc: dict, name: str = "document") -> KeypointSet:
    """The keypoint set of the document's people: its person category's, or COCO-17 where the
    category names no keypoints (DESIGN.md: COCO-17 by default, as in plain COCO files)."""
    return category_set(doc, name) if names_keypoints(doc) else COCO_17


def oks_sigmas(doc: dict, name: str = "document") -> tuple[float, ...]:
    """The OKS sigmas of the document's people: the category's own `lrp.sigmas` where it gives
    them, else its set's. Keypoint names of no known set get COCO's sigmas when there are 17 of
    them (what pycocotools does with any category). An LrpError for a set whose protocol
    defines none (MPII, PoseTrack) or an unknown set of another size."""
    sigmas, why = _sigmas(doc, name)
    if sigmas is None:
        raise LrpError(why)
    return sigmas


def oks_sigmas_if_defined(doc: dict, name: str = "document") -> tuple[float, ...] | None:
    """`oks_sigmas`, or None where OKS is not defined (malformed `lrp.sigmas` still raise)."""
    return _sigmas(doc, name)[0]


def defines_oks(doc: dict, name: str = "document") -> bool:
    """Whether OKS is defined for the document's people (malformed `lrp.sigmas` still raise)."""
    return oks_sigmas_if_defined(doc, name) is not None


def sigmas_source(doc: dict, name: str = "document") -> str:
    """Whose sigmas `oks_sigmas` gives, for the provenance line: a set's name, or the category's own."""
    oks_sigmas(doc, name)
    return _sigmas(doc, name)[1]


def _sigmas(doc: dict, name: str) -> tuple[tuple[float, ...] | None, str]:
    """(sigmas, whose they are) where OKS is defined, else (None, why not)."""
    from lrp.document import person_category_id

    cat_id = person_category_id(doc)
    index, cat = next((i, c) for i, c in enumerate(doc["categories"]) if c["id"] == cat_id)
    names = cat.get("keypoints") or ()
    kset = find_set(cat) if names else COCO_17
    n = len(names) if names else len(COCO_17.keypoints)
    given = (cat.get("lrp") or {}).get("sigmas")
    if given is not None:
        if not isinstance(given, list) or len(given) != n or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in given
        ):
            raise LrpError(f"{name}: categories[{index}].lrp.sigmas must be {n} positive numbers, one per keypoint")
        own = tuple(float(v) for v in given)
        if kset is None:
            return own, "the category's own lrp.sigmas"
        return own, kset.name if own == kset.sigmas else f"{kset.name} (the category's own lrp.sigmas)"
    if kset is None:
        if n == len(COCO_17.keypoints):
            return COCO_17.sigmas, "coco-17 (17 keypoints of no known set)"
        return None, f"{name}: categories[{index}].keypoints ({n} names) are no known set and give no lrp.sigmas for OKS"
    if kset.sigmas is None:
        return None, (
            f"{name}: {kset.name} defines no OKS sigmas, so OKS (COCO AP) is not defined for its keypoints: "
            f"score them with `lrp pck`, or give categories[{index}].lrp.sigmas"
        )
    return kset.sigmas, kset.name
