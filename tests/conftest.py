"""Shared fixtures: the real COCO data beside the checkout, the embedded sample, a CLI runner."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LRP_SHARED_DATA", REPO.parent / "shared" / "data"))
SHARED_REFERENCE = SHARED_DATA.parent / "reference"


def _need(path: Path) -> Path:
    """Real data: skip with a reason in a user's clone, fail in CI (where it must be present)."""
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing, and CI must have the shared data")
        pytest.skip(f"{path} not present (real COCO data lives in ../shared/data)")
    return path


@pytest.fixture(scope="session")
def coco_val4() -> Path:
    return _need(SHARED_DATA / "coco-val-4")


@pytest.fixture(scope="session")
def coco_train_mini() -> Path:
    return _need(SHARED_DATA / "coco-train-mini")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return _need(SHARED_REFERENCE)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def run_lrp(runner: CliRunner, args: list[str], input: str | None = None):
    from lrp.cli import app

    return runner.invoke(app, args, input=input, catch_exceptions=False)


def load_json(text: str):
    return json.loads(text)


def snapshot(root) -> dict[str, str]:
    """Every file under `root` (links not followed) with the sha256 of its bytes: equal before
    and after a refused command means nothing was written, changed or removed."""
    import hashlib
    from pathlib import Path

    root = Path(root)
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes() if not p.is_symlink() else str(p.readlink()).encode()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() or p.is_symlink()}
