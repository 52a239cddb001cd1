"""`--keep-going` reported one way by every command that reads images (lrp.failures): one
`lrp COMMAND: failed: image ...` line per failed image in document order, one error line, exit
1, and the document of what succeeded written anyway. Random weights (plumbing)."""

from __future__ import annotations

import json

import pytest

from conftest import run_lrp
from lrp.errors import LrpError, PartialFailure
from lrp.failures import ImageFailures
from test_detect import random_centernet, small_input, tiny_doc  # noqa: F401  (fixtures)


@pytest.mark.parametrize(
    "command, consequence",
    [
        (["degrade", "--scale", "0.5"], "the document leaves them out"),
        (["superres", "--model", "bicubic", "--scale", "2"], "the document leaves them out"),
        (["detect", "--model", "centernet-mbv3", "--weights", "WEIGHTS"], "they have no detections"),
    ],
)
def test_keep_going_is_reported_the_same_way_by_every_command(runner, tiny_doc, random_centernet, tmp_path, command, consequence):
    doc_path, images = tiny_doc
    (images / "rgba.png").write_bytes(b"not a png")  # image 30
    (images / "gray.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")  # image 20
    command = [str(random_centernet) if a == "WEIGHTS" else a for a in command]
    out = tmp_path / "out.json"
    args = [*command, str(doc_path), "--images", str(images), "-o", str(out), "-q"]
    if command[0] != "detect":
        args += ["--out-dir", str(tmp_path / "run")]
    stopped = run_lrp(runner, args)
    assert stopped.exit_code == 1 and not out.exists()
    assert stopped.stderr.strip().splitlines()[-1].startswith(f"lrp {command[0]}: error: image 20")
    res = run_lrp(runner, [*args, "--keep-going"])
    assert res.exit_code == 1
    lines = res.stderr.strip().splitlines()
    assert [line.split(" (")[0].split(":")[:3] for line in lines[:2]] == [
        [f"lrp {command[0]}", " failed", " image 20"], [f"lrp {command[0]}", " failed", " image 30"]]
    assert lines[2] == f"lrp {command[0]}: error: 2 of 4 images failed (listed above); {consequence}"
    assert len(lines) == 3
    doc = json.loads(out.read_text())
    if command[0] == "detect":
        assert {d["image_id"] for d in doc["lrp"]["detections"]} <= {10, 40} and len(doc["images"]) == 4
    else:
        assert [img["id"] for img in doc["images"]] == [10, 40]


def test_failures_raise_at_once_or_are_listed_in_document_order():
    images = [{"id": i} for i in (3, 1, 2)]

    def fail(i):
        raise LrpError(f"image {i}: broken")

    stop = ImageFailures(keep_going=False)
    with pytest.raises(LrpError, match="image 2: broken"):
        stop.guard(2, fail, 2)
    go = ImageFailures(keep_going=True)
    for i in (2, 3):  # the order threads happen to finish in
        assert go.guard(i, fail, i) is None
    assert go.guard(1, lambda: "pixels") == "pixels"
    go.record(1, LrpError("out of memory"), prefix="image 1: ")
    with pytest.raises(PartialFailure) as e:
        go.finish(images, {"images": []})
    assert e.value.failures == ["image 3: broken", "image 1: out of memory", "image 2: broken"]
    assert str(e.value) == "3 of 3 images failed (listed above); the document leaves them out"
    # A write that fails is named by its file; other OSErrors are not image failures.
    go.guard(3, lambda: (_ for _ in ()).throw(OSError(28, "No space left on device")), writing="out/3.png")
    with pytest.raises(OSError):
        go.guard(4, lambda: (_ for _ in ()).throw(OSError(13, "Permission denied")))
    stop_write = ImageFailures(keep_going=False)
    with pytest.raises(LrpError, match=r"image 5 \(out/5.png\): cannot write: No space left on device"):
        stop_write.guard(5, lambda: (_ for _ in ()).throw(OSError(28, "No space left on device")), writing="out/5.png")
