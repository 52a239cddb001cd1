"""`lrp weights` and the ncnn reader: conversion, strict checks, clear errors. Random weights."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile

import pytest
import torch

from conftest import run_lrp
from lrp.errors import LrpError
from lrp.sources import ncnn
from lrp.models.rrdbnet import rrdbnet_x4, state_from_ncnn
from lrp.sources.packages import package_member


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    d = tmp_path / "weights"
    d.mkdir()
    monkeypatch.setenv("LRP_WEIGHTS", str(d))
    return d


# --------------------------------------------------------------------------------------------
# ncnn reader, on a small synthetic model written in the official layout


def _ncnn_layers_of(model) -> list[ncnn.Layer]:
    """An ncnn layer list holding `model`'s convolutions in state-dict order (as the packages'
    RRDBNet .param files do), with the other layer kinds in between as in the real files."""
    layers = [ncnn.Layer("Input", "input.1", [], ["data"], {})]
    prev = "data"
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    for i, conv in enumerate(convs):
        out = f"b{i}"
        o, c, kh, kw = conv.weight.shape
        layers.append(
            ncnn.Layer(
                "Convolution", f"Conv_{i}", [prev], [out],
                {0: o, 1: kw, 4: 1, 5: 1, 6: o * c * kh * kw, 9: 2, 2: 1, 3: 1, 11: kh, 13: 1, 18: 1, 19: 1},
                weight=conv.weight.detach().numpy(), bias=conv.bias.detach().numpy(),
            )
        )
        if i == 0:
            layers.append(ncnn.Layer("Split", "splitncnn_0", [out], [out + "_0", out + "_1"], {}))
            out = out + "_0"
        prev = out
    layers.append(ncnn.Layer("Interp", "Resize_1", [prev], ["up"], {0: 1, 1: 2.0, 2: 2.0}))
    layers[-1].params[10] = [1, 2]  # an array parameter, written as -23310=2,1,2
    return layers


def test_ncnn_round_trip_into_rrdbnet(tmp_path):
    torch.manual_seed(0)
    model = rrdbnet_x4(num_block=1)
    text, blob = ncnn.write_ncnn(_ncnn_layers_of(model))
    (tmp_path / "m.param").write_text(text)
    (tmp_path / "m.bin").write_bytes(blob)
    layers = ncnn.load_ncnn(tmp_path / "m.param", tmp_path / "m.bin")
    assert layers[-1].params[10] == [1, 2]
    state = state_from_ncnn(layers, num_block=1)
    fresh = rrdbnet_x4(num_block=1)
    fresh.load_state_dict(state, strict=True)
    for k, v in model.state_dict().items():
        expect = v.half().float() if k.endswith("weight") else v  # weights stored as fp16, bias fp32
        assert torch.equal(state[k], expect), k


def test_ncnn_reader_refuses_broken_files(tmp_path):
    model = rrdbnet_x4(num_block=1)
    text, blob = ncnn.write_ncnn(_ncnn_layers_of(model))
    layers = ncnn.parse_param(text)
    with pytest.raises(LrpError, match="truncated"):
        ncnn.read_bin(ncnn.parse_param(text), blob[:-10], "m.bin")
    with pytest.raises(LrpError, match="left over"):
        ncnn.read_bin(layers, blob + b"\0\0\0\0", "m.bin")
    with pytest.raises(LrpError, match="storage tag"):
        ncnn.read_bin(ncnn.parse_param(text), b"\x07\x00\x00\x00" + blob[4:], "m.bin")
    with pytest.raises(LrpError, match="not an ncnn .param"):
        ncnn.parse_param("hello\n1 1\n")
    with pytest.raises(LrpError, match="header says"):
        ncnn.parse_param(text.replace(f"\n{len(layers)} ", f"\n{len(layers) + 1} ", 1))
    with pytest.raises(LrpError, match="convolutions"):
        state_from_ncnn(ncnn.read_bin(ncnn.parse_param(text), blob), num_block=2)


def test_package_member_reads_wheels_and_sdists(tmp_path):
    whl = tmp_path / "p-1.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr("p/models/x4.param", "abc")
        z.writestr("p/models/x4.bin", b"\1\2")
    sdist = tmp_path / "p-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as t:
        info = tarfile.TarInfo("p-1.0/p/models/models-DF2K/x4.bin")
        info.size = 2
        t.addfile(info, io.BytesIO(b"\3\4"))
    assert package_member(whl, "models/x4.param") == b"abc"
    assert package_member(sdist, "models-DF2K/x4.bin") == b"\3\4"
    with pytest.raises(LrpError, match="expected one file"):
        package_member(whl, "missing.bin")


# --------------------------------------------------------------------------------------------
# The CLI


def test_list_shows_every_superres_model_and_presence(runner, weights_dir):
    (weights_dir / "realsr-df2k-x4.safetensors").write_bytes(b"x")
    res = run_lrp(runner, ["weights", "list", "--json", "--task", "superres"])
    assert res.exit_code == 0, res.stderr
    rows = {r["name"]: r for r in map(json.loads, res.stdout.splitlines())}
    expected = {"bicubic", "esrgan", "esrnet", "usrnet", "usrgan", "usrnet-tiny", "usrgan-tiny",
                "realesrgan-x4plus", "realsr-df2k-x4"} | {f"srmd{nf}-x{s}" for nf in ("", "nf") for s in (2, 3, 4)}
    assert expected <= set(rows)
    assert rows["realsr-df2k-x4"]["present"] and not rows["esrgan"]["present"]
    assert "lrp weights convert esrgan RRDB_ESRGAN_x4.pth" in rows["esrgan"]["source"]
    assert "lrp weights fetch realesrgan-x4plus" in rows["realesrgan-x4plus"]["source"]
    for r in rows.values():
        assert r["licence"] and r["trained_on"] and r["arch"]
    table = run_lrp(runner, ["weights", "list"])
    assert table.exit_code == 0 and "realsr-df2k-x4" in table.stdout


def test_missing_weights_name_the_command_that_gets_them(runner, weights_dir):
    res = run_lrp(runner, ["weights", "path", "esrnet"])
    assert res.exit_code == 1
    assert "lrp weights convert esrgan RRDB_PSNR_x4.pth --model esrnet" in res.stderr
    res = run_lrp(runner, ["weights", "path", "srmdnf-x4"])
    assert res.exit_code == 1 and "lrp weights fetch srmdnf-x4" in res.stderr


def test_fetch_refuses_models_that_no_package_ships(runner, weights_dir):
    res = run_lrp(runner, ["weights", "fetch", "esrgan"])
    assert res.exit_code == 2
    assert "not shipped by a package" in res.stderr and "lrp weights convert esrgan" in res.stderr


def test_convert_full_official_checkpoint_then_path_and_verify(runner, weights_dir, tmp_path, reference_dir):
    """The full ESRGAN architecture, a checkpoint laid out exactly like the official old-naming
    file: converted, stored under the registry name, found by `path`, checked by `verify`."""
    keys = json.loads((reference_dir / "checkpoint-keys" / "esrgan_old_arch.json").read_text())["keys"]
    src = tmp_path / "RRDB_PSNR_x4.pth"
    torch.save({k: torch.full(shape, 0.01) for k, shape in keys.items()}, src)
    res = run_lrp(runner, ["weights", "convert", "esrgan", str(src), "--model", "esrnet"])
    assert res.exit_code == 0, res.stderr
    dst = weights_dir / "esrnet_x4.safetensors"
    assert res.stdout.strip() == str(dst) and dst.is_file()
    assert "strict load into esrgan ok" in res.stderr
    assert run_lrp(runner, ["weights", "path", "esrnet"]).stdout.strip() == str(dst)
    ok = run_lrp(runner, ["weights", "verify", "esrnet"])
    assert ok.exit_code == 0 and ok.stdout.startswith("ok")
    # A damaged file is caught by verify, with the model named.
    dst.write_bytes(dst.read_bytes()[:1000])
    bad = run_lrp(runner, ["weights", "verify", "esrnet"])
    assert bad.exit_code == 1 and "FAIL  esrnet" in bad.stdout


def test_convert_refuses_wrong_architecture_and_bad_destination(runner, weights_dir, tmp_path, reference_dir):
    # A USRNet checkpoint handed to the ESRGAN converter.
    keys = json.loads((reference_dir / "checkpoint-keys" / "usrnet_tiny.json").read_text())["keys"]
    src = tmp_path / "usrnet_tiny.pth"
    torch.save({k: torch.zeros(shape) for k, shape in keys.items()}, src)
    res = run_lrp(runner, ["weights", "convert", "esrgan", str(src), "-o", str(tmp_path / "x.safetensors")])
    assert res.exit_code == 1 and "not an RRDBNet checkpoint" in res.stderr
    assert not (tmp_path / "x.safetensors").exists()
    # An RRDBNet with the wrong number of blocks: the strict load names what is missing.
    small = {k: v for k, v in rrdbnet_x4(num_block=2).state_dict().items()}
    torch.save(small, tmp_path / "small.pth")
    res = run_lrp(runner, ["weights", "convert", "esrgan", str(tmp_path / "small.pth"), "-o", str(tmp_path / "y.safetensors")])
    assert res.exit_code == 1 and "missing" in res.stderr and "body.2." in res.stderr
    assert not (tmp_path / "y.safetensors").exists()
    res = run_lrp(runner, ["weights", "convert", "esrgan", str(src), "-o", str(tmp_path / "x.pth")])
    assert res.exit_code == 2 and ".safetensors" in res.stderr
    res = run_lrp(runner, ["weights", "convert", "nosuch", str(src), "-o", str(tmp_path / "x.safetensors")])
    assert res.exit_code == 2 and "unknown architecture" in res.stderr


def test_fetched_weights_if_cached_strict_load():
    """`lrp weights fetch` downloads packages, so CI does not run it; where a user fetched the
    files before (LRP_WEIGHTS), check them."""
    from lrp.device import load_state_dict, weights_dir

    names = ["realesrgan-x4plus", "realsr-df2k-x4"]
    present = [n for n in names if (weights_dir() / f"{n}.safetensors").is_file()]
    if not present:
        pytest.skip(f"no fetched weights in {weights_dir()} (run `lrp weights fetch {' '.join(names)}`)")
    for name in present:
        state = load_state_dict(weights_dir() / f"{name}.safetensors")
        rrdbnet_x4().load_state_dict(state, strict=True)


# --------------------------------------------------------------------------------------------
# Hostile checkpoints: nothing in them runs


class _Payload:
    """Unpickling this calls os.system, which would create `marker`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_convert_refuses_a_pkl_that_would_run_code(runner, weights_dir, tmp_path):
    import pickle

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    with open(evil, "wb") as f:
        pickle.dump({"model": {"w": _Payload(marker)}}, f, protocol=2)
    before = sorted(p.name for p in weights_dir.iterdir())
    res = run_lrp(runner, ["weights", "convert", "faster-rcnn-r101-fpn", str(evil), "--model", "faster-rcnn-r101-fpn"])
    assert res.exit_code == 1
    assert not marker.exists()
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lrp weights: error: ")
    assert f"{evil}: refuses to unpickle posix.system" in lines[0]
    assert sorted(p.name for p in weights_dir.iterdir()) == before


def test_arrays_only_unpickler_reads_every_protocol_and_numpy_scalars(tmp_path):
    import collections
    import pickle

    import numpy as np

    from lrp.sources.checkpoints import read_detectron2_checkpoint

    model = collections.OrderedDict(w=np.arange(6, dtype=np.float32).reshape(2, 3), n=np.int64(7), s=np.float32(0.5))
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        path = tmp_path / f"p{protocol}.pkl"
        with open(path, "wb") as f:
            pickle.dump({"model": model, "__author__": "Detectron2 Model Zoo", "matching_heuristics": True}, f, protocol=protocol)
        got = read_detectron2_checkpoint(path)
        assert list(got) == ["w", "n", "s"]
        np.testing.assert_array_equal(got["w"], model["w"])
        assert got["n"] == 7 and got["s"] == np.float32(0.5)


def test_old_model_names_still_select_their_model(runner, weights_dir):
    """usrnet_tiny / usrgan_tiny were renamed to the registry's hyphen style; the old names stay
    aliases (same spec, same weights file), and are not listed twice."""
    from lrp.models import REGISTRY, get_model

    for old, new in (("usrnet_tiny", "usrnet-tiny"), ("usrgan_tiny", "usrgan-tiny")):
        assert old not in REGISTRY and get_model(old, "superres") is REGISTRY[new]
        assert REGISTRY[new].weights.file == f"{old}.safetensors"
        res = run_lrp(runner, ["weights", "path", old])
        assert res.exit_code == 1 and f"--model {new}" in res.stderr


def test_missing_official_weights_name_the_file_and_its_page(runner, weights_dir):
    for name, official, page in (
        ("usrnet", "usrnet.pth", "cszn/USRNet"),
        ("esrgan", "RRDB_ESRGAN_x4.pth", "xinntao/ESRGAN"),
        ("faster-rcnn-r101-fpn", "137851257/model_final_f6e8b1.pkl", "facebookresearch/detectron2 MODEL_ZOO.md"),
        ("hrnet-w32-256x192", "pose_hrnet_w32_256x192.pth", "leoxiaobin/deep-high-resolution-net.pytorch"),
    ):
        res = run_lrp(runner, ["weights", "path", name])
        assert res.exit_code == 1
        assert f"official file {official}" in res.stderr or f"/{official}, from" in res.stderr, res.stderr
        assert f"from {page}" in res.stderr, res.stderr


def test_list_and_path_do_not_import_torch(tmp_path):
    """The registry and the weights folder are torch-free: listing is instant."""
    import os
    import subprocess
    import sys

    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom lrp.cli import app\n"
        "for args in (['weights', 'list', '--json'], ['weights', 'path', 'usrnet']):\n"
        "    CliRunner().invoke(app, args)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "LRP_WEIGHTS": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
