"""`pose_document`: the library function behind `lrp pose` (no CLI), and its one failure type."""

from __future__ import annotations

import copy

import pytest

from lrp.errors import LrpError, PartialFailure, UsageError
from lrp.pose import PoseFailures, pose_document
from test_pose import tiny_model, val4_doc  # noqa: F401  (fixtures)


def test_pose_document_returns_a_new_document(tiny_model, val4_doc):
    _, doc = val4_doc
    before = copy.deepcopy(doc)
    out = pose_document(doc, model=tiny_model, device="cpu", quiet=True, warp="opencv4")
    assert doc == before  # the input is untouched
    assert len(out["lrp"]["poses"]) == 12
    assert out["lrp"]["history"][-1]["args"]["warp"] == "opencv4"


def test_pose_document_failures(tiny_model, val4_doc):
    _, doc = val4_doc
    with pytest.raises(UsageError, match="--decode simcc"):
        pose_document(doc, model=tiny_model, decode="simcc", quiet=True)
    doc = copy.deepcopy(doc)
    doc["images"][0]["file_name"] = "missing.jpg"
    with pytest.raises(LrpError, match="missing.jpg"):
        pose_document(doc, model=tiny_model, device="cpu", quiet=True)
    with pytest.raises(PoseFailures) as e:
        pose_document(doc, model=tiny_model, device="cpu", quiet=True, keep_going=True)
    assert isinstance(e.value, PartialFailure) and len(e.value.failures) == 1 and "missing.jpg" in e.value.failures[0]
    kept = {p["image_id"] for p in e.value.doc["lrp"]["poses"]}
    assert kept and doc["images"][0]["id"] not in kept
