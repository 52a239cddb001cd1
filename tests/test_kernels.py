"""Kernel files: one reader and one check for degrade and superres (.npy, text, MATLAB .mat), and
USRNet's default kernel on bicubic documents = the official kernels_bicubicx234.mat, as the
official main_test_bicubic.py uses it. Random weights (plumbing and equality, not quality)."""

from __future__ import annotations

import json
import shutil
import struct

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from conftest import run_lrp
from matv5 import loadmat
from test_new_model import random_images_doc

OFFICIAL = "usrnet_kernels_bicubicx234.mat"


def write_mat(path, variables: dict):
    """A MATLAB v5 file (uncompressed, little-endian) of real matrices or lists of them (cells)."""

    def element(typ: int, data: bytes) -> bytes:
        return struct.pack("<II", typ, len(data)) + data + b"\0" * (-len(data) % 8)

    def matrix(name: str, value) -> bytes:
        if isinstance(value, list):
            flags, dims = 1, (1, len(value))
            body = b"".join(element(14, matrix("", v)) for v in value)
        else:
            value = np.asarray(value, dtype=np.float64)
            flags, dims = 6, value.shape
            body = element(9, value.tobytes(order="F"))
        return (element(6, struct.pack("<II", flags, 0)) + element(5, struct.pack(f"<{len(dims)}i", *dims))
                + element(1, name.encode()) + body)

    header = b"MATLAB 5.0 MAT-file, written by lrp's tests".ljust(116) + b"\0" * 8 + struct.pack("<H", 0x0100) + b"IM"
    path.write_bytes(header + b"".join(element(14, matrix(n, v)) for n, v in variables.items()))


def _official(reference_dir):
    return loadmat(reference_dir / OFFICIAL)["kernels"]


# --------------------------------------------------------------------------------------------
# The reader and the check


def test_mat_reader_reads_the_official_file_like_the_independent_test_reader(reference_dir):
    from lrp.sources.matlab import read_mat

    ours = read_mat((reference_dir / OFFICIAL).read_bytes())["kernels"]
    ref = _official(reference_dir)
    assert ours.shape == ref.shape == (1, 3)
    for i in range(3):
        assert ours[0, i].dtype == np.float64 and np.array_equal(ours[0, i], ref[0, i].astype(np.float64))


def test_kernel_files_of_every_format_give_the_same_kernel(tmp_path, reference_dir):
    from lrp.kernels import load_kernel

    rng = np.random.default_rng(1)
    k = rng.uniform(size=(3, 5))
    k /= k.sum()
    np.save(tmp_path / "k.npy", k)
    np.savetxt(tmp_path / "k.txt", k, fmt="%.17g")
    write_mat(tmp_path / "k.mat", {"k": k})
    write_mat(tmp_path / "several.mat", {"kernels": [k, k.T]})
    for name in ("k.npy", "k.txt", "k.mat", "several.mat:1"):
        got, _ = load_kernel(str(tmp_path / name))
        assert np.array_equal(got, k), name
    assert np.array_equal(load_kernel(str(tmp_path / "several.mat:2"))[0], k.T)
    # The official layout: the scale picks the cell, as main_test_bicubic.py's kernels[0, sf-2].
    official = _official(reference_dir)
    shutil.copy(reference_dir / OFFICIAL, tmp_path / "kernels_bicubicx234.mat")
    for sf in (2, 3, 4):
        got, _ = load_kernel(str(tmp_path / "kernels_bicubicx234.mat"), scale=sf)
        assert np.array_equal(got, official[0, sf - 2].astype(np.float64))


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("sum2.npy", np.ones((3, 3)) * 2 / 9, "a blur kernel must sum to about 1 (within 0.001; it sums to 2)"),
        ("flat.npy", np.ones((2, 2, 2)) / 8, "a blur kernel must be a 2-D array, got shape (2, 2, 2)"),
        ("nan.txt", "0.5 nan\n0.25 0.25\n", "the blur kernel has NaN or infinite entries"),
        ("several.mat", [np.ones((3, 3)) / 9] * 2, "holds 2 kernels; pick one with several.mat:N (N = 1..2)"),
        ("several.mat:3", [np.ones((3, 3)) / 9] * 2, "holds 2 kernels, there is no cell 3"),
        ("broken.mat", b"MATLAB 5.0 but not really", "not a MATLAB v5 .mat file"),
    ],
)
def test_degrade_and_superres_refuse_a_bad_kernel_with_one_and_the_same_line(runner, tmp_path, name, content, message):
    coco, _, _ = random_images_doc(tmp_path / "img", [(8, 8)])
    path = tmp_path / name.split(":")[0]
    if isinstance(content, np.ndarray):
        np.save(path, content)
    elif isinstance(content, list):
        write_mat(path, {"kernels": content})
    elif isinstance(content, bytes):
        path.write_bytes(content.ljust(200, b"\0"))
    else:
        path.write_text(content)
    spec = str(tmp_path / name)
    errors = []
    for args in (["degrade", "--scale", "0.5", "--kernel", spec], ["superres", "--model", "usrnet-tiny", "--kernel", spec]):
        res = run_lrp(runner, [*args, str(coco), "--images", str(tmp_path / "img"), "--out-dir", str(tmp_path / "out"), "-q"])
        assert res.exit_code == 2, res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], lines
        errors.append(lines[0].split(": error: ", 1)[1])
        assert not (tmp_path / "out").exists()
    assert errors[0] == errors[1] and errors[0].startswith(f"--kernel {spec}: ")


def test_one_tolerance_for_the_sum():
    from lrp.kernels import SUM_TOLERANCE, check_kernel
    from lrp.resize import Blur

    k = np.ones((3, 3)) / 9
    for total in (1 + 0.9 * SUM_TOLERANCE, 1 - 0.9 * SUM_TOLERANCE):
        check_kernel(k * total)
        Blur.kernel(k * total)
    for total in (1 + 1.1 * SUM_TOLERANCE, 1 - 1.1 * SUM_TOLERANCE):
        with pytest.raises(ValueError, match="must sum to about 1"):
            check_kernel(k * total)
        with pytest.raises(ValueError, match="must sum to about 1"):
            Blur.kernel(k * total)


# --------------------------------------------------------------------------------------------
# USRNet's default kernel on bicubic documents


@pytest.fixture
def weights_with_official_kernels(tmp_path, monkeypatch, reference_dir):
    d = tmp_path / "weights"
    d.mkdir()
    shutil.copy(reference_dir / OFFICIAL, d / "kernels_bicubicx234.mat")
    monkeypatch.setenv("LRP_WEIGHTS", str(d))
    return d


def test_default_kernel_of_a_bicubic_document_is_the_official_one(weights_with_official_kernels, reference_dir):
    from lrp.models import get_model
    from lrp.superres import degradation_kernel

    official = _official(reference_dir)
    spec = get_model("usrnet", "superres")
    for sf in (2, 3, 4):
        doc = {"lrp": {"degradation": {"method": "bicubic", "scale": 1 / sf, "kernel": None, "noise": 0.0}}}
        kernel, label = degradation_kernel(doc, spec, sf)
        assert label == f"kernels_bicubicx234.mat x1/{sf}"
        assert kernel.shape == (25, 25) and np.abs(kernel - official[0, sf - 2]).max() <= 1e-5
    # Not bicubic, or a blur on top, or a scale the file lacks: lrp's own fit, as before.
    for deg, sf in (({"method": "bilinear", "scale": 0.5}, 2), ({"method": "bicubic", "scale": 0.5, "kernel": "gaussian:1"}, 2),
                    ({"method": "bicubic", "scale": 0.2}, 5)):
        assert degradation_kernel({"lrp": {"degradation": deg}}, spec, sf)[1].startswith("fitted")


def test_without_the_file_the_fit_is_used_and_a_note_says_where_the_official_one_is(tmp_path, monkeypatch, capsys):
    from lrp.models import get_model
    from lrp.superres import degradation_kernel

    monkeypatch.setenv("LRP_WEIGHTS", str(tmp_path))
    doc = {"lrp": {"degradation": {"method": "bicubic", "scale": 0.25}}}
    kernel, label = degradation_kernel(doc, get_model("usrnet", "superres"), 4, quiet=False)
    assert label == "fitted bicubic x1/4" and kernel.shape == (25, 25)
    err = capsys.readouterr().err
    assert f"no {tmp_path / 'kernels_bicubicx234.mat'}" in err and "cszn/USRNet, folder kernels/" in err


def test_superres_default_equals_the_official_mat_given_as_kernel(runner, tmp_path, weights_with_official_kernels):
    from lrp.models.usrnet import usrnet

    _, _, images = random_images_doc(tmp_path / "hr", [(40, 32), (36, 28)], seed=3)  # SR x2 of their x1/2
    lr = tmp_path / "lr.json"
    res = run_lrp(runner, ["degrade", "--scale", "0.5", "--images", str(tmp_path / "hr"), str(tmp_path / "hr.json"),
                           "--out-dir", str(tmp_path / "lr"), "-o", str(lr), "-q"])
    assert res.exit_code == 0, res.stderr
    torch.manual_seed(0)
    net = usrnet(n_iter=6, h_nc=32, nc=[16, 32, 64, 64])
    with torch.no_grad():  # biases of the HyPaNet away from their init, so noise and scale matter
        for p in net.h.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    wfile = tmp_path / "usrnet_tiny_random.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(wfile))
    common = [str(lr), "--model", "usrnet-tiny", "--weights", str(wfile), "--device", "cpu", "-q"]
    default = run_lrp(runner, ["superres", *common, "--out-dir", str(tmp_path / "default")])
    assert default.exit_code == 0, default.stderr
    assert json.loads(default.stdout)["lrp"]["history"][-1]["args"]["kernel"] == "kernels_bicubicx234.mat x1/2"
    given = run_lrp(runner, ["superres", *common, "--kernel", str(weights_with_official_kernels / "kernels_bicubicx234.mat"),
                             "--out-dir", str(tmp_path / "given")])
    assert given.exit_code == 0, given.stderr
    fitted = run_lrp(runner, ["superres", *common, "--kernel", str(_fitted_kernel_file(tmp_path, 2)), "--out-dir", str(tmp_path / "fitted")])
    assert fitted.exit_code == 0, fitted.stderr
    for img in images:
        a = np.asarray(Image.open(tmp_path / "default" / img["file_name"]))
        b = np.asarray(Image.open(tmp_path / "given" / img["file_name"]))
        assert a.shape == (img["height"], img["width"], 3) and np.array_equal(a, b)
    # ... and the kernel matters: lrp's own fit gives other pixels with these weights.
    assert any(
        not np.array_equal(np.asarray(Image.open(tmp_path / "default" / i["file_name"])), np.asarray(Image.open(tmp_path / "fitted" / i["file_name"])))
        for i in images
    )


def _fitted_kernel_file(tmp_path, sf):
    from lrp.kernels import fit_decimation_kernel

    path = tmp_path / f"fitted_x{sf}.npy"
    np.save(path, fit_decimation_kernel(sf))
    return path


def test_damaged_mat_files_are_refused_in_one_line(tmp_path, reference_dir):
    """Truncated or bit-flipped copies of the official file: a UsageError naming the file,
    never a traceback, a huge allocation or a wrong kernel taken silently."""
    from lrp.errors import UsageError
    from lrp.kernels import load_kernel

    data = (reference_dir / OFFICIAL).read_bytes()
    # An uncompressed copy too, so that damage hits the matrix headers and not only zlib.
    write_mat(tmp_path / "plain.mat", {"kernels": [k.astype(np.float64) for k in _official(reference_dir)[0]]})
    plain = (tmp_path / "plain.mat").read_bytes()
    rng = np.random.default_rng(0)
    cases = [data[:n] for n in (0, 100, 130, 200, 1000, len(data) - 1)] + [plain[:n] for n in (140, 200, 300, 5000, len(plain) - 8)]
    for _ in range(40):
        b = bytearray(plain)
        b[int(rng.integers(128, 400))] ^= 0xFF  # the tags and headers of the first cells
        cases.append(bytes(b))
    path = tmp_path / "x234" / "kernels_bicubicx234.mat"
    path.parent.mkdir()
    for damaged in cases:
        path.write_bytes(damaged)
        try:
            kernel, _ = load_kernel(str(path), scale=4)
        except UsageError as e:
            assert str(e).startswith(f"--kernel {path}: ") and "\n" not in str(e)
        else:  # damage that left a valid file (a flipped tap value): still a checked kernel
            assert kernel.ndim == 2 and abs(kernel.sum() - 1) <= 1e-3
