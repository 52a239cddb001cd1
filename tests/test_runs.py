"""Run folders: the manifest (`.lrp-run.json`), `lrp runs` and `lrp runs gc`."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest

from conftest import run_lrp
from lrp.degrade import degrade_document
from lrp.outputs import RUN_MANIFEST, run_hash
from lrp.sample import sample_document
from lrp.shard import document_hash


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default lrp-runs/ lands here
    return tmp_path


def manifest(folder: Path) -> dict:
    return json.loads((folder / RUN_MANIFEST).read_text())


def tree(root: Path) -> dict:
    return {str(p.relative_to(root)): p.lstat().st_mtime_ns for p in sorted(root.rglob("*"))}


@contextlib.contextmanager
def crash_on_second_image():
    """The step dies (as on Ctrl-C) after writing its first image."""
    import lrp.degrade

    real, calls = lrp.degrade.save_png, []

    def save(arr, path):
        calls.append(path)
        if len(calls) > 1:
            raise KeyboardInterrupt
        real(arr, path)

    lrp.degrade.save_png = save
    try:
        with pytest.raises(KeyboardInterrupt):
            yield
    finally:
        lrp.degrade.save_png = real


def as_dead_run(folder: Path) -> None:
    """What a crashed run on another machine leaves: its process is not running here."""
    m = manifest(folder)
    (folder / RUN_MANIFEST).write_text(json.dumps(dict(m, host="elsewhere")))


# --------------------------------------------------------------------------------------------
# The manifest


def test_manifest_records_the_run_and_is_marked_complete_at_the_end(cwd):
    doc = sample_document()
    new = degrade_document(doc, scale=0.25, noise=2.0, quiet=True)
    folder = Path(new["lrp"]["image_root"])
    assert folder.parent == cwd / "lrp-runs"
    m = manifest(folder)
    args = {"scale": 0.25, "to_origin": False, "method": "bicubic", "kernel": None, "noise": 2.0, "jpeg": None, "seed": 0, "kernel_sha256": None}
    assert folder.name == f"degrade-bicubic-x0.25-noise2-{run_hash('degrade', doc, args)}"
    assert m["command"] == "degrade" and m["run"] == run_hash("degrade", doc, args)
    assert m["arguments"] == args
    assert m["input"] == document_hash(doc)
    assert m["images"] == len(doc["images"]) == 6
    assert m["complete"] is True and m["started"] <= m["finished"]


def test_interrupted_run_stays_incomplete_and_is_resumed(cwd):
    doc = sample_document()
    with crash_on_second_image():
        degrade_document(doc, scale=0.5, quiet=True, workers=1)
    (folder,) = (cwd / "lrp-runs").iterdir()
    assert manifest(folder)["complete"] is False
    degrade_document(doc, scale=0.5, quiet=True)  # the same run: resumed in the same folder
    assert [p.name for p in (cwd / "lrp-runs").iterdir()] == [folder.name]
    m = manifest(folder)
    assert m["complete"] is True and "resumed" in m


def test_superres_folder_names_the_model_and_scale(cwd):
    from lrp.superres import superres_document

    lr = degrade_document(sample_document(), scale=0.25, quiet=True)
    sr = superres_document(lr, model="bicubic", quiet=True)
    folder = Path(sr["lrp"]["image_root"])
    assert folder.name.startswith("superres-bicubic-x4-") and len(folder.name) == len("superres-bicubic-x4-") + 12
    assert manifest(folder)["complete"] is True


def test_old_style_folder_is_still_resumed(cwd):
    """A folder of an older version (`<command>-<hash>`, manifest {command, run}) is found by its hash."""
    doc = sample_document()
    first = degrade_document(doc, scale=0.5, quiet=True)
    new_name = Path(first["lrp"]["image_root"])
    old = new_name.parent / f"degrade-{manifest(new_name)['run']}"
    new_name.rename(old)
    (old / RUN_MANIFEST).write_text(json.dumps({"command": "degrade", "run": manifest(old)["run"]}) + "\n")
    pngs = {p.name: p.stat().st_mtime_ns for p in old.glob("*.png")}
    again = degrade_document(doc, scale=0.5, quiet=True)
    assert again["lrp"]["image_root"] == str(old.resolve())
    assert {p.name: p.stat().st_mtime_ns for p in old.glob("*.png")} == pngs  # reused, not rewritten
    assert manifest(old)["complete"] is True


def test_out_dir_of_another_run_is_still_refused(cwd, runner):
    sample = cwd / "s"
    from lrp.sample import ensure_sample

    ensure_sample(sample)
    base = ["degrade", "-q", "--images", str(sample / "images"), str(sample / "person_keypoints.json"), "--out-dir", "o"]
    assert run_lrp(runner, base + ["-s", "0.5"]).exit_code == 0
    r = run_lrp(runner, base + ["-s", "0.25"])
    assert r.exit_code == 2 and "another run" in r.stderr


def test_shards_complete_the_shared_folder_together(cwd):
    from lrp.shard import shard_document

    doc = sample_document()
    folder = cwd / "shared-out"
    from lrp.runs import find_runs

    degrade_document(shard_document(doc, 0, 2), scale=0.5, out_dir=folder, quiet=True)
    (run,) = find_runs(cwd)
    assert run.state == "running"  # shard 1 of 2 not done; this process (the writer) is alive
    as_dead_run(folder)
    assert find_runs(cwd)[0].state == "incomplete"
    degrade_document(shard_document(doc, 1, 2), scale=0.5, out_dir=folder, quiet=True)
    (run,) = find_runs(cwd)
    assert run.state == "complete" and run.images == 6


# --------------------------------------------------------------------------------------------
# lrp runs


@pytest.fixture
def two_runs(cwd):
    """A complete degrade run and an interrupted one (from a process that is gone)."""
    doc = sample_document()
    done = degrade_document(doc, scale=0.25, quiet=True)
    return cwd / "lrp-runs", Path(done["lrp"]["image_root"]), doc


def _interrupted(cwd, doc) -> Path:
    before = set((cwd / "lrp-runs").iterdir())
    with crash_on_second_image():
        degrade_document(doc, scale=0.5, quiet=True, workers=1)
    (folder,) = set((cwd / "lrp-runs").iterdir()) - before
    as_dead_run(folder)
    return folder


def test_runs_lists_what_when_state_images_and_size(two_runs, runner, cwd, monkeypatch):
    root, done, doc = two_runs
    broken = _interrupted(cwd, doc)
    r = run_lrp(runner, ["runs", "--format", "json"])
    assert r.exit_code == 0, r.stderr
    records = {Path(x["folder"]).name: x for x in json.loads(r.stdout)}
    assert records[done.name]["state"] == "complete" and records[done.name]["complete"] is True
    assert records[done.name]["what"] == "degrade bicubic-x0.25"
    assert records[done.name]["images"] == 6 and records[done.name]["expected_images"] == 6
    assert records[done.name]["bytes"] == sum(p.stat().st_size for p in done.iterdir())
    assert records[broken.name]["state"] == "incomplete" and records[broken.name]["images"] == 1
    for columns in ("60", "80", "200"):
        monkeypatch.setenv("COLUMNS", columns)
        r = run_lrp(runner, ["runs"])
        assert r.exit_code == 0
        lines = r.stdout.splitlines()
        assert all(len(line.rstrip()) <= int(columns) for line in lines), r.stdout
        assert done.name in r.stdout and broken.name in r.stdout  # the folder names are never cut
        assert "incomplete" in r.stdout
    assert "degrade bicubic-x0.25" in r.stdout  # the wide table shows what each run is
    r = run_lrp(runner, ["runs", "--format", "csv"])
    lines = r.stdout.splitlines()
    assert r.exit_code == 0 and lines[0].startswith("folder,what,command,run,") and len(lines) == 3
    r = run_lrp(runner, ["runs", "--format", "markdown"])
    assert r.exit_code == 0 and "| degrade bicubic-x0.25 |" in r.stdout


def test_runs_bad_root_is_one_line(runner, tmp_path):
    r = run_lrp(runner, ["runs", "--root", str(tmp_path / "nope")])
    assert r.exit_code == 2 and r.stderr.startswith("lrp runs: error: --root") and len(r.stderr.splitlines()) == 1
    r = run_lrp(runner, ["runs", "--format", "xml", "--root", str(tmp_path)])
    assert r.exit_code == 2 and "--format" in r.stderr
    r = run_lrp(runner, ["runs", "--bogus"])
    assert r.exit_code == 2 and r.stderr.startswith("lrp runs: error: No such option: --bogus")
    r = run_lrp(runner, ["runs", "gc", "--root", str(tmp_path / "nope")])
    assert r.exit_code == 2 and r.stderr.startswith("lrp runs: error: --root") and len(r.stderr.splitlines()) == 1


# --------------------------------------------------------------------------------------------
# lrp runs gc


def test_gc_removes_incomplete_runs_only(two_runs, runner, cwd, monkeypatch):
    root, done, doc = two_runs
    broken = _interrupted(cwd, doc)
    before = tree(root)
    r = run_lrp(runner, ["runs", "gc", "--dry-run"])
    assert r.exit_code == 0 and f"would remove {broken}" in r.stdout and str(done) not in r.stdout
    assert tree(root) == before
    r = run_lrp(runner, ["runs", "gc"])
    assert r.exit_code == 0 and f"removed {broken} (incomplete" in r.stdout
    assert sorted(root.iterdir()) == [done]
    assert {k: v for k, v in before.items() if k.startswith(done.name)} == tree(root)


def test_gc_keeps_a_running_run(two_runs, runner, cwd):
    root, done, doc = two_runs
    m = manifest(done)
    (done / RUN_MANIFEST).write_text(json.dumps(dict(m, complete=False, pid=os.getpid())))  # as if still writing
    r = run_lrp(runner, ["runs", "--format", "json"])
    assert json.loads(r.stdout)[0]["state"] == "running"
    assert run_lrp(runner, ["runs", "gc"]).exit_code == 0
    assert done.is_dir()


def test_gc_unreferenced_keeps_what_documents_use(two_runs, runner, cwd):
    from lrp.outputs import write_document
    from lrp.superres import superres_document

    root, done, doc = two_runs
    lr = json.loads(json.dumps(degrade_document(doc, scale=0.25, quiet=True)))
    sr = superres_document(lr, model="bicubic", quiet=True)
    write_document(sr, cwd / "sr.json")
    r = run_lrp(runner, ["runs", "gc", "--unreferenced", "sr.json"])
    assert r.exit_code == 0, r.stderr
    assert f"removed {done} (unreferenced" in r.stdout
    assert [p.name for p in root.iterdir()] == [Path(sr["lrp"]["image_root"]).name]
    # Keeping both documents keeps both folders.
    lr2 = degrade_document(doc, scale=0.25, quiet=True)
    write_document(lr2, cwd / "lr.json")
    assert run_lrp(runner, ["runs", "gc", "--unreferenced", "sr.json", "lr.json"]).exit_code == 0
    assert len(list(root.iterdir())) == 2


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--unreferenced"], 2, "needs the documents"),
        (["doc.json"], 2, "without --unreferenced"),
        (["--unreferenced", "missing.json"], 1, "missing.json"),
        (["--unreferenced", "bad.json"], 1, "bad.json"),
    ],
)
def test_gc_bad_arguments_remove_nothing(two_runs, runner, cwd, monkeypatch, args, code, message):
    root, done, doc = two_runs
    _interrupted(cwd, doc)
    (cwd / "bad.json").write_text("{not json")
    (cwd / "doc.json").write_text("{}")
    before = tree(root)
    r = run_lrp(runner, ["runs", "gc", *args])
    assert r.exit_code == code and r.stderr.startswith("lrp runs: error:") and message in r.stderr
    assert len(r.stderr.splitlines()) == 1
    assert tree(root) == before


def test_gc_refuses_a_root_that_is_not_a_runs_folder(runner, tmp_path, cwd, two_runs):
    plain = tmp_path / "photos"
    plain.mkdir()
    (plain / "keep.png").write_bytes(b"x")
    (plain / "sub").mkdir()
    for root in (plain, two_runs[1]):  # no run folder in it; a run folder itself
        before = tree(root)
        r = run_lrp(runner, ["runs", "gc", "--root", str(root)])
        assert r.exit_code == 2 and "lrp runs: error: --root" in r.stderr, r.stderr
        assert tree(root) == before


def test_gc_never_follows_symlinks_out_of_the_root(two_runs, runner, cwd, monkeypatch, tmp_path):
    root, done, doc = two_runs
    broken = _interrupted(cwd, doc)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.png").write_bytes(b"keep me")
    (outside / RUN_MANIFEST).write_text(json.dumps({"command": "degrade", "run": "x", "complete": False}))
    (root / "linked-run").symlink_to(outside, target_is_directory=True)  # looks like an incomplete run
    (broken / "link-out").symlink_to(outside, target_is_directory=True)  # a link inside a removed run
    r = run_lrp(runner, ["runs", "gc"])
    assert r.exit_code == 0, r.stderr
    assert not broken.exists()
    assert (root / "linked-run").is_symlink() and (outside / "precious.png").read_bytes() == b"keep me"
    assert str(root / "linked-run") not in r.stdout
