"""examples/cluster: the Table 6 chain over shards on Ray and as a Slurm job array gives the
single-process result.

Both run the embedded sample through degrade 1/4 -> superres bicubic x4 -> pose (MoveNet
Thunder, real weights) on GT boxes -> evaluate --size-from, in 2 shards, and compare the merged
documents, the images and the table with one unsharded run in this process. Ray runs on a local
2-worker cluster that the test starts; Slurm is checked without a cluster: submit.sh against a
stand-in `sbatch` that records what it is asked, and each array task's body with
SLURM_ARRAY_TASK_ID set.

Every run here uses one CPU thread (Ray gives a 1-CPU task OMP_NUM_THREADS=1 anyway): MoveNet's
keypoints move by ~3e-5 px between 1 and 2 threads, and equal must mean equal.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.test_shard import REAL_WEIGHTS, assert_same_images, assert_same_run, lrp_ok

CLUSTER = REPO / "examples" / "cluster"
MOVENET = REAL_WEIGHTS / "movenet-thunder.safetensors"
SHARDS = 2

pytestmark = pytest.mark.slow


def _missing(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"{reason}, and CI must have it")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    """The embedded sample as a plain COCO folder (images/ and person_keypoints.json)."""
    from lrp.sample import ensure_sample

    if not MOVENET.is_file():
        _missing(f"{MOVENET} is missing (lrp weights fetch movenet-thunder)")
    return ensure_sample(tmp_path_factory.mktemp("sample"))


@pytest.fixture(scope="module")
def reference(sample, tmp_path_factory) -> Path:
    """The Table 6 chain in one process, unsharded: the folder of its documents and table."""
    import torch

    out = tmp_path_factory.mktemp("reference")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _reference_chain(sample, out)
    finally:
        torch.set_num_threads(threads)
    return out


def _reference_chain(sample: Path, out: Path) -> None:
    pose = ["pose", "-q", "--model", "movenet-thunder", "--boxes", "gt", "--device", "cpu"]
    lrp_ok("degrade", "-q", "--scale", "0.25", "--images", sample / "images", sample / "person_keypoints.json",
           "--out-dir", out / "images/lr4", "-o", out / "lr4.json")
    lrp_ok(*pose, out / "lr4.json", "-o", out / "gtpose-lr4.json")
    lrp_ok("superres", "-q", "--model", "bicubic", "--scale", "4", "--device", "cpu", out / "lr4.json",
           "--out-dir", out / "images/sr4-bicubic", "-o", out / "sr4-bicubic.json")
    lrp_ok(*pose, out / "sr4-bicubic.json", "-o", out / "gtpose-sr4-bicubic.json")
    lrp_ok("evaluate", "--format", "markdown", "--size-from", out / "lr4.json", out / "gtpose-lr4.json",
           out / "gtpose-sr4-bicubic.json", "-o", out / "table6.md")


@pytest.fixture
def worktree_lrp(monkeypatch):
    """Subprocesses (and Ray workers) import this checkout's lrp and the example scripts, and
    run on one thread as the reference does."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), str(CLUSTER)]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def assert_matches_reference(out: Path, reference: Path) -> None:
    def read(path: Path) -> dict:
        return json.loads(path.read_text())

    assert_same_run(read(out / "lr4.json"), read(reference / "lr4.json"))
    assert_same_images(read(out / "lr4.json"), read(reference / "lr4.json"))
    for stage in ("lr4", "sr4-bicubic"):
        merged, full = read(out / "gtpose" / f"{stage}.json"), read(reference / f"gtpose-{stage}.json")
        assert merged["lrp"]["poses"], stage  # MoveNet found people
        assert_same_run(merged, full)
        assert_same_images(merged, full)
        assert merged["lrp"]["history"][-1]["args"]["shards"] == SHARDS
    assert (out / "table6.md").read_text() == (reference / "table6.md").read_text()
    assert Path(json.loads((out / "shards" / "lr4.0.json").read_text())["lrp"]["image_root"]) == out / "images" / "lr4"


def chain_args(sample: Path, out: Path) -> list[str]:
    return ["--shards", str(SHARDS), "--images", str(sample / "images"), "--ann", str(sample / "person_keypoints.json"),
            "--out", str(out), "--pose-model", "movenet-thunder", "--device", "cpu"]


def test_ray_runs_one_task_per_shard_and_merges_to_the_single_process_result(sample, reference, worktree_lrp, tmp_path, capsys):
    try:
        import ray
    except ImportError:
        _missing("ray is not installed (pip install 'lrp[cluster]')")
    spec = importlib.util.spec_from_file_location("ray_table6", CLUSTER / "ray_table6.py")
    driver = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(driver)
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 2**20, log_to_driver=False)
    try:
        assert ray.cluster_resources().get("CPU") == 2
        assert driver.main(chain_args(sample, tmp_path) + ["--num-gpus", "0"]) == 0
    finally:
        ray.shutdown()
    assert capsys.readouterr().out == (tmp_path / "table6.md").read_text()
    assert_matches_reference(tmp_path, reference)


def test_slurm_submit_makes_an_array_of_shards_and_a_dependent_merge(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "sbatch.log"
    fake = bin_dir / "sbatch"  # records its arguments, answers a job id as `sbatch --parsable` does
    fake.write_text(f'#!/bin/sh\necho "$*" >> {log}\necho $((4000 + $(wc -l < {log})))\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "SHARDS": "5", "IMAGES": "/data/val2017",
           "ANN": "/data/ann.json", "OUT": "/shared/t6"}
    res = subprocess.run(["bash", str(CLUSTER / "submit.sh")], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    shard_call, merge_call = log.read_text().splitlines()
    assert "--array=0-4" in shard_call.split() and shard_call.endswith("shard.sbatch")
    assert "--dependency=afterok:4001" in merge_call.split() and merge_call.endswith("merge.sbatch")
    assert "4001" in res.stdout and "4002" in res.stdout
    # without the settings it says which one is missing, and submits nothing
    env.pop("ANN")
    log.unlink()
    res = subprocess.run(["bash", str(CLUSTER / "submit.sh")], env=env, capture_output=True, text=True)
    assert res.returncode != 0 and "ANN" in res.stderr and not log.exists()


def test_slurm_directives_are_well_formed():
    for script in ("shard.sbatch", "merge.sbatch"):
        lines = (CLUSTER / script).read_text().splitlines()
        assert lines[0] == "#!/bin/bash"
        directives = [line.split(None, 1)[1] for line in lines if line.startswith("#SBATCH")]
        assert directives and all(d.startswith("--") and "=" in d for d in directives), script
        assert not any(d.startswith("--array") for d in directives)  # submit.sh sizes the array
        subprocess.run(["bash", "-n", str(CLUSTER / script)], check=True)


def test_slurm_array_tasks_then_merge_give_the_single_process_result(sample, reference, worktree_lrp, tmp_path):
    env = {**os.environ, "SHARDS": str(SHARDS), "IMAGES": str(sample / "images"), "ANN": str(sample / "person_keypoints.json"),
           "OUT": str(tmp_path), "SR_MODELS": "bicubic", "POSE_MODEL": "movenet-thunder", "DEVICE": "cpu", "PYTHON": sys.executable}
    res = subprocess.run(["bash", str(CLUSTER / "shard.sbatch")], env=env, capture_output=True, text=True)
    assert res.returncode != 0 and "SLURM_ARRAY_TASK_ID" in res.stderr  # outside an array task
    for task in reversed(range(SHARDS)):
        res = subprocess.run(["bash", str(CLUSTER / "shard.sbatch")], env={**env, "SLURM_ARRAY_TASK_ID": str(task)},
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
    res = subprocess.run(["bash", str(CLUSTER / "merge.sbatch")], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout == (tmp_path / "table6.md").read_text()
    assert_matches_reference(tmp_path, reference)
