"""The Python API: `from lrp import degrade, ...` are the functions the commands run."""

from __future__ import annotations

import doctest
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import lrp
from conftest import run_lrp

README = Path(__file__).resolve().parent.parent / "README.md"


def test_import_loads_no_torch_and_steps_are_callable():
    code = (
        "import sys, inspect; import lrp; "
        "from lrp import degrade, superres, detect, pose, evaluate, mix, bucket, merge, load, save; "
        "steps = (degrade, superres, detect, pose, evaluate, mix, bucket, merge); "
        "assert all(callable(s) for s in steps); "
        "assert list(inspect.signature(degrade).parameters)[:2] == ['doc', 'scale'], inspect.signature(degrade); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name, function", sorted(lrp.STEPS.items()))
def test_each_step_calls_its_command_function(name, function, monkeypatch):
    import importlib

    module = importlib.import_module(f"lrp.{name}")
    assert getattr(lrp, name) is module  # still the module: `lrp.degrade.degrade_document` works
    assert (getattr(module, function).__doc__ or "").strip(), f"{function} has no docstring"
    seen = []
    monkeypatch.setattr(module, function, lambda *a, **k: seen.append((a, k)) or "result")
    assert getattr(lrp, name)("doc", option=1) == "result"
    assert seen == [(("doc",), {"option": 1})]


def test_api_gives_the_cli_documents(tmp_path, monkeypatch, runner):
    """lrp.degrade | lrp.superres in Python writes the documents and images the pipe does."""
    from lrp.sample import ensure_sample

    monkeypatch.chdir(tmp_path)
    sample = ensure_sample(tmp_path / "s")
    hr = lrp.load(json.loads((sample / "person_keypoints.json").read_text()), images=sample / "images")
    sr = lrp.superres(lrp.degrade(hr, scale=0.25, quiet=True), model="bicubic", quiet=True)
    lr_cli = run_lrp(runner, ["degrade", "-q", "-s", "0.25", "--images", str(sample / "images"), str(sample / "person_keypoints.json")])
    sr_cli = run_lrp(runner, ["superres", "-q", "--model", "bicubic"], input=lr_cli.stdout)
    assert sr_cli.exit_code == 0, sr_cli.stderr

    def timeless(text):  # when each step ran, and how long it took (lrp.timing)
        return re.sub(r',"timing":\{[^{}]*\}', "", re.sub(r'"time":"[^"]*"', "", text))

    lrp.save(sr, tmp_path / "sr.json")
    assert timeless((tmp_path / "sr.json").read_text()) == timeless(sr_cli.stdout)
    assert len(list((tmp_path / "lrp-runs").iterdir())) == 2  # the same run folders, reused


def test_load_leaves_the_dict_alone_and_checks_it(tmp_path):
    coco = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "person"}]}
    doc = lrp.load(coco, images=tmp_path)
    assert "lrp" in doc and "lrp" not in coco
    with pytest.raises(lrp.UsageError, match="needs --images"):
        lrp.load(coco)
    with pytest.raises(lrp.LrpError, match="nope.json"):
        lrp.load(tmp_path / "nope.json")


def test_readme_python_api_example(tmp_path, monkeypatch):
    """The README's "Python API" example, run as a doctest."""
    text = README.read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    monkeypatch.chdir(tmp_path)
    test = doctest.DocTestParser().get_doctest(section, {}, "README.md: Python API", str(README), 0)
    assert len(test.examples) >= 10
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    result = runner.run(test, out=lambda s: pytest.fail(s))
    assert result.failed == 0 and result.attempted == len(test.examples)
    assert (tmp_path / "sr.json").is_file()
