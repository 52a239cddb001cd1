"""`--shard I/N` and `lrp merge`: shards of every image step merge into the unsharded document.

The input is the embedded sample with its images and annotations shuffled, so that document
order, annotation order and image-id order all differ and the merge has to restore each.
Pose runs a tiny random-weight HRNet (plumbing and order, not accuracy); detect runs CenterNet
with its real weights where `lrp weights fetch centernet-mbv3` has been done.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from lrp.merge import merge_documents
from lrp.shard import parse_shard, run_identity, shard_document, shard_of
from lrp.errors import UsageError
from tests.conftest import REPO, run_lrp

N = 3
REAL_WEIGHTS = Path(os.environ.get("LRP_WEIGHTS", Path.home() / ".cache" / "lrp" / "weights"))
CENTERNET = REAL_WEIGHTS / "centernet-mbv3.safetensors"


# --------------------------------------------------------------------------------------------
# The split


def test_parse_shard():
    assert parse_shard("0/4") == (0, 4)
    assert parse_shard(" 3 / 4 ") == (3, 4)
    for bad in ("4/4", "-1/4", "1/0", "1", "a/b", "1/2/3", ""):
        with pytest.raises(UsageError):
            parse_shard(bad)


def test_split_is_a_balanced_partition_that_ignores_id_spacing():
    ids = list(range(0, 4000, 2))  # all even: `id mod 2` would put everything in one shard
    for n in (1, 2, 5):
        counts = [0] * n
        for iid in ids:
            counts[shard_of(iid, n)] += 1
        assert sum(counts) == len(ids)
        assert min(counts) > 0.8 * len(ids) / n, counts


def test_split_is_the_same_in_every_process():
    """No salted hash(): another interpreter with another hash seed splits identically."""
    ids = [1, 785, 9001, 2**40 + 7, 397133]
    code = f"from lrp.shard import shard_of; print([shard_of(i, 7) for i in {ids}])"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
        env={**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)},
    )
    assert json.loads(out.stdout) == [shard_of(i, 7) for i in ids]


def test_shards_partition_a_document_and_leave_it_untouched(shuffled):
    _, doc = shuffled
    before = json.dumps(doc)
    parts = [shard_document(doc, i, N, "degrade") for i in range(N)]
    assert json.dumps(doc) == before
    assert sorted(i["id"] for p in parts for i in p["images"]) == sorted(i["id"] for i in doc["images"])
    assert sum(len(p["annotations"]) for p in parts) == len(doc["annotations"])
    for i, p in enumerate(parts):
        ids = {img["id"] for img in p["images"]}
        assert all(shard_of(iid, N) == i for iid in ids)
        assert all(a["image_id"] in ids for a in p["annotations"])
        assert p["lrp"]["shard"]["index"] == i and p["lrp"]["shard"]["count"] == N
    assert len({p["lrp"]["shard"]["input"] for p in parts}) == 1
    # every shard of one run shares one run folder; the unsharded run has its own
    assert len({json.dumps(run_identity(p), sort_keys=True) for p in parts}) == 1
    assert run_identity(doc) is doc


def test_resharding_the_same_shard_is_a_no_op_and_another_is_refused(shuffled):
    _, doc = shuffled
    part = shard_document(doc, 1, N)
    assert shard_document(part, 1, N) is part
    with pytest.raises(UsageError, match="already shard 1/3"):
        shard_document(part, 0, N)


# --------------------------------------------------------------------------------------------
# Every image step, sharded and merged, against one unsharded run


@pytest.fixture(scope="module")
def shuffled(tmp_path_factory):
    """The sample with images and annotations shuffled (a fixed permutation)."""
    from lrp.sample import sample_document

    doc = sample_document()
    rng = random.Random(11)
    rng.shuffle(doc["images"])
    rng.shuffle(doc["annotations"])
    path = tmp_path_factory.mktemp("shuffled") / "sample.json"
    path.write_text(json.dumps(doc))
    return path, doc


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A weights folder with the tiny random-weight HRNet of test_pose (and CenterNet if fetched)."""
    import torch
    from safetensors.torch import save_file

    from lrp.models import REGISTRY
    from tests.test_pose import TINY

    weights = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    net = TINY.build()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights / TINY.weights.file))
    if CENTERNET.is_file():
        (weights / CENTERNET.name).symlink_to(CENTERNET)
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(REGISTRY, TINY.name, TINY)
        mp.setenv("LRP_WEIGHTS", str(weights))
        yield TINY.name


def lrp_ok(*args: str) -> None:
    from typer.testing import CliRunner

    res = run_lrp(CliRunner(), [str(a) for a in args])
    assert res.exit_code == 0, res.stderr


def step_args(step: str, pose_model: str) -> list[str]:
    return {
        "degrade": ["degrade", "-q", "--scale", "0.25"],
        "superres": ["superres", "-q", "--model", "bicubic"],
        "detect": ["detect", "-q", "--model", "centernet-mbv3", "--device", "cpu"],
        "pose-gt": ["pose", "-q", "--model", pose_model, "--boxes", "gt", "--device", "cpu"],
        "pose-detections": ["pose", "-q", "--model", pose_model, "--boxes", "detections", "--device", "cpu"],
    }[step]


# Each step reads the unsharded output of the step before it.
INPUT_OF = {"degrade": None, "superres": "degrade", "detect": "superres", "pose-gt": "superres", "pose-detections": "detect"}
WRITES_IMAGES = ("degrade", "superres")


@pytest.fixture(scope="module")
def unsharded(shuffled, models, tmp_path_factory):
    """The whole chain once, without shards: step -> output path."""
    root = tmp_path_factory.mktemp("unsharded")
    paths = {}
    for step, source in INPUT_OF.items():
        if step in ("detect", "pose-detections") and not CENTERNET.is_file():
            continue
        src = [str(shuffled[0] if source is None else paths[source])]
        out_dir = ["--out-dir", str(root / step)] if step in WRITES_IMAGES else []
        paths[step] = root / f"{step}.json"
        lrp_ok(*step_args(step, models), *src, *out_dir, "-o", paths[step])
    return paths


def comparable(doc: dict) -> dict:
    """A document without what may differ between runs: times (when, and how long: timing), the
    merge step, the image root."""
    doc = json.loads(json.dumps(doc))
    doc["lrp"]["history"] = [{k: v for k, v in s.items() if k not in ("time", "timing")} for s in doc["lrp"]["history"] if s["command"] != "merge"]
    doc["lrp"]["image_root"] = None
    return doc


def assert_same_run(merged: dict, full: dict) -> None:
    assert [i["id"] for i in merged["images"]] == [i["id"] for i in full["images"]]
    assert [a["id"] for a in merged["annotations"]] == [a["id"] for a in full["annotations"]]
    for key in ("detections", "poses"):
        assert merged["lrp"][key] == full["lrp"][key], key
    assert comparable(merged) == comparable(full)
    assert "shard" not in merged["lrp"]
    # The timing of each step run after the split is joined over the shards: the same images
    # and people in all; steps before the split keep the one timing they had.
    for got, want in zip(merged["lrp"]["history"], full["lrp"]["history"]):
        if "timing" in want:
            assert (got["timing"]["images"], got["timing"]["people"]) == (want["timing"]["images"], want["timing"]["people"])


def assert_same_images(merged: dict, full: dict) -> None:
    for img in full["images"]:
        a = Path(full["lrp"]["image_root"]) / img["file_name"]
        b = Path(merged["lrp"]["image_root"]) / img["file_name"]
        assert a.read_bytes() == b.read_bytes(), img["file_name"]


@pytest.mark.slow
@pytest.mark.parametrize("step", list(INPUT_OF))
def test_sharded_step_merges_into_the_unsharded_document(step, shuffled, models, unsharded, tmp_path):
    if step not in unsharded:
        pytest.skip(f"{CENTERNET} is missing (lrp weights fetch centernet-mbv3)")
    source = INPUT_OF[step]
    src = [str(unsharded[source] if source else shuffled[0])]
    out_dir = ["--out-dir", str(tmp_path / "images")] if step in WRITES_IMAGES else []
    parts = []
    for i in reversed(range(N)):  # any order
        parts.append(tmp_path / f"part{i}.json")
        lrp_ok(*step_args(step, models), "--shard", f"{i}/{N}", *src, *out_dir, "-o", parts[-1])
    lrp_ok("merge", "-q", *parts, "-o", tmp_path / "merged.json")
    merged, full = (json.loads(p.read_text()) for p in (tmp_path / "merged.json", unsharded[step]))
    assert_same_run(merged, full)
    if step in WRITES_IMAGES:
        assert_same_images(merged, full)
    last = merged["lrp"]["history"][-1]
    assert last["command"] == "merge" and last["args"]["shards"] == N and last["args"]["sharded_at"] == step.split("-")[0]
    assert last["args"]["inputs"] == [str(tmp_path / f"part{i}.json") for i in range(N)]


@pytest.mark.slow
def test_a_chain_run_per_shard_merges_once_at_the_end(shuffled, models, unsharded, tmp_path, monkeypatch):
    """degrade --shard I/N | superres | [detect |] pose: the later steps carry the shard along,
    and the shards share each stage's default run folder (no --out-dir)."""
    final = "pose-detections" if "detect" in unsharded else "pose-gt"
    chain = ["degrade", "superres"] + (["detect"] if final == "pose-detections" else []) + [final]
    monkeypatch.chdir(tmp_path)  # the default lrp-runs/ folders go here
    parts = []
    for i in range(N):
        src = [str(shuffled[0])]
        for step in chain:
            out = tmp_path / f"{step}.{i}.json"
            shard = ["--shard", f"{i}/{N}"] if step == "degrade" else []
            lrp_ok(*step_args(step, models), *shard, *src, "-o", out)
            src = [str(out)]
        parts.append(out)
    lrp_ok("merge", "-q", *parts, "-o", tmp_path / "merged.json")
    merged, full = (json.loads(p.read_text()) for p in (tmp_path / "merged.json", unsharded[final]))
    assert_same_run(merged, full)
    assert_same_images(merged, full)
    assert Path(merged["lrp"]["image_root"]).parent == tmp_path / "lrp-runs"
    assert len(list((tmp_path / "lrp-runs").iterdir())) == 2  # one folder per image step, shared by the shards


@pytest.mark.slow
def test_more_shards_than_images(shuffled, tmp_path):
    """Empty shards are fine: they write nothing and merge to nothing."""
    image_root = json.loads(shuffled[0].read_text())["lrp"]["image_root"]
    n = 9
    args = ["degrade", "-q", "--scale", "0.5", "--images", image_root, str(shuffled[0]), "--out-dir", tmp_path / "img"]
    parts = []
    for i in range(n):
        parts.append(tmp_path / f"p{i}.json")
        lrp_ok(*args, "--shard", f"{i}/{n}", "-o", parts[-1])
    assert any(not json.loads(p.read_text())["images"] for p in parts)
    lrp_ok(*args[:-2], "--out-dir", tmp_path / "full", "-o", tmp_path / "full.json")
    lrp_ok("merge", "-q", *parts, "-o", tmp_path / "merged.json")
    assert_same_run(*(json.loads((tmp_path / f).read_text()) for f in ("merged.json", "full.json")))


# --------------------------------------------------------------------------------------------
# Bad input: one line, exit 1 (2 for usage), nothing written


@pytest.fixture(scope="module")
def lr_shards(shuffled, tmp_path_factory):
    """Shards of `degrade --scale 0.5` of the shuffled sample, N of them, sharing one --out-dir."""
    root = tmp_path_factory.mktemp("lr-shards")
    image_root = json.loads(shuffled[0].read_text())["lrp"]["image_root"]
    paths = []
    for i in range(N):
        paths.append(root / f"lr.{i}.json")
        lrp_ok("degrade", "-q", "--shard", f"{i}/{N}", "--scale", "0.5", "--images", image_root, shuffled[0],
               "--out-dir", root / "img", "-o", paths[-1])
    return root, image_root, paths


def merge_fails(args, tmp_path, exit_code=1) -> str:
    from typer.testing import CliRunner

    out = tmp_path / "merged.json"
    res = run_lrp(CliRunner(), ["merge", *[str(a) for a in args], "-o", str(out)])
    assert res.exit_code == exit_code, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lrp merge: error: "), res.stderr
    assert not out.exists()
    return lines[0]


def edited(path: Path, tmp_path: Path, name: str, change) -> Path:
    doc = json.loads(path.read_text())
    change(doc)
    out = tmp_path / name
    out.write_text(json.dumps(doc))
    return out


def test_merge_refuses_overlapping_shards(lr_shards, tmp_path):
    _, _, paths = lr_shards
    line = merge_fails([paths[0], paths[1], paths[2], paths[1]], tmp_path)
    assert "both shard 1/3" in line and "overlapping" in line


def test_merge_refuses_missing_shards(lr_shards, tmp_path):
    _, _, paths = lr_shards
    line = merge_fails([paths[0], paths[2]], tmp_path)
    assert "shard 1/3 missing" in line


def test_merge_refuses_shards_of_different_inputs(lr_shards, shuffled, tmp_path):
    root, image_root, paths = lr_shards
    other = edited(shuffled[0], tmp_path, "other.json", lambda d: d["annotations"].pop())
    lrp_ok("degrade", "-q", "--shard", f"1/{N}", "--scale", "0.5", "--images", image_root, other,
           "--out-dir", root / "img-other", "-o", tmp_path / "other.1.json")
    line = merge_fails([paths[0], tmp_path / "other.1.json", paths[2]], tmp_path)
    assert "other.1.json" in line and "different input" in line


def test_merge_refuses_shards_of_different_settings(lr_shards, shuffled, tmp_path):
    _, image_root, paths = lr_shards
    lrp_ok("degrade", "-q", "--shard", f"2/{N}", "--scale", "0.25", "--images", image_root, shuffled[0],
           "--out-dir", tmp_path / "img", "-o", tmp_path / "quarter.2.json")
    line = merge_fails([paths[0], paths[1], tmp_path / "quarter.2.json"], tmp_path)
    assert "quarter.2.json" in line and "other settings" in line and "scale differs" in line
    # a different number of shards is another split of the same input
    lrp_ok("degrade", "-q", "--shard", "1/2", "--scale", "0.5", "--images", image_root, shuffled[0],
           "--out-dir", tmp_path / "img2", "-o", tmp_path / "half.1.json")
    assert "shard 1/2" in merge_fails([paths[0], tmp_path / "half.1.json"], tmp_path)


def test_merge_refuses_shards_with_images_in_different_folders(lr_shards, shuffled, tmp_path):
    _, image_root, paths = lr_shards
    lrp_ok("degrade", "-q", "--shard", f"0/{N}", "--scale", "0.5", "--images", image_root, shuffled[0],
           "--out-dir", tmp_path / "elsewhere", "-o", tmp_path / "lr.0.json")
    line = merge_fails([tmp_path / "lr.0.json", paths[1], paths[2]], tmp_path)
    assert "same --out-dir" in line


def test_merge_refuses_documents_that_are_not_shards(lr_shards, shuffled, tmp_path):
    _, _, paths = lr_shards
    line = merge_fails([shuffled[0], *paths], tmp_path)
    assert str(shuffled[0]) in line and "not a shard document" in line


def test_merge_refuses_a_tampered_shard(lr_shards, tmp_path):
    _, _, paths = lr_shards
    big = max(paths, key=lambda p: len(json.loads(p.read_text())["annotations"]))
    cut = edited(big, tmp_path, big.name, lambda d: d["annotations"].pop())
    line = merge_fails([cut if p == big else p for p in paths], tmp_path)
    assert cut.name in line and "annotations" in line


def test_merge_refuses_to_write_over_a_shard(lr_shards, tmp_path):
    from typer.testing import CliRunner

    _, _, paths = lr_shards
    before = paths[0].read_bytes()
    res = run_lrp(CliRunner(), ["merge", *map(str, paths), "-o", str(paths[0])])
    assert res.exit_code == 2 and "is an input of this command; refusing to write over it" in res.stderr  # lrp.outputs.check_output_files
    assert paths[0].read_bytes() == before


@pytest.mark.parametrize("spec", ["3/3", "x", "1/0"])
def test_bad_shard_option_is_a_usage_error(spec, shuffled):
    from typer.testing import CliRunner

    res = run_lrp(CliRunner(), ["degrade", "-q", "--scale", "0.5", "--shard", spec, str(shuffled[0])])
    assert res.exit_code == 2 and res.stderr.startswith("lrp degrade: error: --shard"), res.stderr


def test_merge_documents_is_a_library_function(lr_shards):
    _, _, paths = lr_shards
    docs = [(p.name, json.loads(p.read_text())) for p in paths]
    merged = merge_documents(list(reversed(docs)))
    assert merged["lrp"]["history"][-1]["args"]["inputs"] == [p.name for p in paths]
    assert sorted(i["id"] for i in merged["images"]) == sorted(i["id"] for _, d in docs for i in d["images"])
