"""`lrp quality`: PSNR/SSIM as BasicSR computes them, checked against independent references.

Two references written here from the formulas (not BasicSR's code): a direct one (per-pixel
loops over the 11x11 window, the luma pixel by pixel) and, where cv2 is installed, one that
filters with `cv2.filter2D` and `cv2.getGaussianKernel` as BasicSR's `_ssim` does.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lrp import quality as q
from tests.conftest import run_lrp


# --------------------------------------------------------------------------------------------
# References


def ref_y(rgb: np.ndarray) -> np.ndarray:
    """Luma as ((b*24.966 + g*128.553 + r*65.481)/255 + 16) / 255 in float32, times 255, plane by plane."""
    r, g, b = (rgb[..., c].astype(np.float32) / np.float32(255) for c in range(3))
    y = b.astype(np.float64) * 24.966 + g.astype(np.float64) * 128.553 + r.astype(np.float64) * 65.481 + 16.0
    return ((y / 255.0).astype(np.float32) * np.float32(255)).astype(np.float64)


def ref_window() -> np.ndarray:
    g = np.array([math.exp(-((i - 5) ** 2) / (2 * 1.5**2)) for i in range(11)])
    g /= g.sum()
    return np.outer(g, g)


def ref_ssim_channel(a: np.ndarray, b: np.ndarray) -> float:
    """The SSIM index at every valid window position, by explicit windows, then the mean."""
    win = ref_window()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            pa, pb = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
            ma, mb = (win * pa).sum(), (win * pb).sum()
            va = (win * pa * pa).sum() - ma * ma
            vb = (win * pb * pb).sum() - mb * mb
            cov = (win * pa * pb).sum() - ma * mb
            values.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2)))
    return float(np.mean(values))


def ref_planes(img, border, y):
    img = img[border : img.shape[0] - border, border : img.shape[1] - border]
    return ref_y(img)[..., None] if y else img.astype(np.float64)


def ref_psnr(sr, hr, border, y=False):
    a, b = ref_planes(sr, border, y), ref_planes(hr, border, y)
    mse = sum(float(d) ** 2 for d in (a - b).ravel()) / a.size
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def ref_ssim(sr, hr, border, y=False):
    a, b = ref_planes(sr, border, y), ref_planes(hr, border, y)
    return float(np.mean([ref_ssim_channel(a[..., c], b[..., c]) for c in range(a.shape[2])]))


def cv2_ssim(sr, hr, border, y=False):
    """BasicSR's recipe with the library it uses: cv2.filter2D with the outer Gaussian, valid crop."""
    cv2 = pytest.importorskip("cv2")
    a, b = ref_planes(sr, border, y), ref_planes(hr, border, y)
    k = cv2.getGaussianKernel(11, 1.5)
    window = np.outer(k, k.transpose())
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    out = []
    for c in range(a.shape[2]):
        x1, x2 = a[..., c], b[..., c]
        f = lambda x: cv2.filter2D(x, -1, window)[5:-5, 5:-5]  # noqa: E731
        m1, m2 = f(x1), f(x2)
        s1, s2, s12 = f(x1 * x1) - m1 * m1, f(x2 * x2) - m2 * m2, f(x1 * x2) - m1 * m2
        out.append((((2 * m1 * m2 + c1) * (2 * s12 + c2)) / ((m1 * m1 + m2 * m2 + c1) * (s1 + s2 + c2))).mean())
    return float(np.mean(out))


def pair(seed=0, h=29, w=37):
    rng = np.random.default_rng(seed)
    hr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    # A plausible "SR" image: the HR blurred a little plus noise, so SSIM is neither 0 nor 1.
    noisy = hr.astype(np.float64) * 0.8 + 0.2 * np.roll(hr, 1, axis=1) + rng.normal(0, 6, hr.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8), hr


# --------------------------------------------------------------------------------------------
# The formulas


@pytest.mark.parametrize("border", [0, 2, 4])
@pytest.mark.parametrize("channel", ["rgb", "y"])
def test_psnr_and_ssim_equal_the_references(border, channel):
    sr, hr = pair(border)
    y = channel == "y"
    assert q.calculate_psnr(sr, hr, border, channel) == pytest.approx(ref_psnr(sr, hr, border, y), rel=1e-12)
    assert q.calculate_ssim(sr, hr, border, channel) == pytest.approx(ref_ssim(sr, hr, border, y), rel=1e-12)
    # And the metric is not trivial on this pair.
    assert 0.1 < q.calculate_ssim(sr, hr, border, channel) < 0.99


@pytest.mark.parametrize("channel", ["rgb", "y"])
def test_ssim_equals_the_cv2_filter2d_recipe(channel):
    sr, hr = pair(7, 64, 80)
    assert q.calculate_ssim(sr, hr, 4, channel) == pytest.approx(cv2_ssim(sr, hr, 4, channel == "y"), rel=1e-12, abs=1e-13)


def test_y_channel_is_the_float32_luma():
    _, hr = pair(3, 9, 11)
    # Summation order may differ by one float64 ulp before the float32 rounding.
    np.testing.assert_allclose(q.y_channel(hr), ref_y(hr), rtol=1e-7, atol=0)
    # Pure white and black hit the BT.601 limits 235 and 16.
    assert q.y_channel(np.full((1, 1, 3), 255, np.uint8))[0, 0] == pytest.approx(235.0, abs=1e-4)
    assert q.y_channel(np.zeros((1, 1, 3), np.uint8))[0, 0] == pytest.approx(16.0, abs=1e-5)


def test_gaussian_kernel_is_cv2s():
    cv2 = pytest.importorskip("cv2")
    np.testing.assert_allclose(q.gaussian_kernel(), cv2.getGaussianKernel(11, 1.5)[:, 0], rtol=1e-15, atol=1e-17)


def test_identical_images():
    _, hr = pair(1)
    assert q.calculate_psnr(hr, hr, 4) == math.inf
    assert q.calculate_ssim(hr, hr, 4, "y") == pytest.approx(1.0, abs=1e-12)


def test_person_box_figures_are_the_figures_of_the_box():
    sr, hr = pair(5, 60, 70)
    border = 4
    res = q.image_quality(sr, hr, border, 1, {7: [20.3, 15.5, 20.0, 25.2], 8: [0, 0, 3, 3]})
    # Box 7 covers rows 15..40, columns 20..40 (rounded outwards): its PSNR is over those pixels.
    assert res.people[7]["psnr_rgb"] == pytest.approx(ref_psnr(sr[15:41, 20:41], hr[15:41, 20:41], 0), rel=1e-12)
    # Its SSIM averages the whole image's map over the box: the windows centred in it.
    a, b = sr[border:-border, border:-border].astype(float), hr[border:-border, border:-border].astype(float)
    maps = np.mean([q.ssim_map(a[..., c], b[..., c]) for c in range(3)], axis=0)
    y0, x0 = 15 - border - 5, 20 - border - 5
    assert res.people[7]["ssim_rgb"] == pytest.approx(maps[y0 : y0 + 26, x0 : x0 + 21].mean(), rel=1e-12)
    # Box 8 lies inside the cropped border: not measured.
    assert 8 not in res.people
    assert res.values["psnr_y"] == pytest.approx(ref_psnr(sr, hr, border, True), rel=1e-12)


def test_common_area_and_size_tolerance():
    a, b = np.zeros((428, 640, 3), np.uint8), np.zeros((425, 640, 3), np.uint8)
    x, y = q.common_area(a, b, 4, "image 1")
    assert x.shape == y.shape == (425, 640, 3)
    from lrp.errors import LrpError

    with pytest.raises(LrpError, match="image 1: the SR image is 640x429"):
        q.common_area(np.zeros((429, 640, 3), np.uint8), b, 4, "image 1")


# --------------------------------------------------------------------------------------------
# The command, on the embedded sample degraded 1/4 and brought back x4 with bicubic


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    from typer.testing import CliRunner

    from lrp.sample import ensure_sample

    root = tmp_path_factory.mktemp("quality")
    ensure_sample(root / "s")
    r = CliRunner()
    lr, sr = root / "lr.json", root / "sr.json"
    res = run_lrp(r, ["degrade", "-q", "--scale", "0.25", "--images", str(root / "s/images"), str(root / "s/person_keypoints.json"), "--out-dir", str(root / "lr"), "-o", str(lr)])
    assert res.exit_code == 0, res.output
    res = run_lrp(r, ["superres", "-q", "--model", "bicubic", str(lr), "--out-dir", str(root / "sr"), "-o", str(sr)])
    assert res.exit_code == 0, res.output
    return root


def test_command_json_equals_the_reference_on_real_files(runner, chain):
    from lrp.images import load_rgb

    res = run_lrp(runner, ["quality", "-q", "--origin-images", str(chain / "s/images"), str(chain / "sr.json"), "--format", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)["documents"][0]
    assert out["crop_border"] == 4 and out["sr_factor"] == 4
    sr_doc = json.loads((chain / "sr.json").read_text())
    per_image = {i["image_id"]: i for i in out["images"]}
    for img in sr_doc["images"]:
        sr = load_rgb(chain / "sr" / img["file_name"])
        hr = load_rgb(chain / "s/images" / img["lrp"]["origin"]["file_name"])
        h, w = min(sr.shape[0], hr.shape[0]), min(sr.shape[1], hr.shape[1])
        sr, hr = sr[:h, :w], hr[:h, :w]
        got = per_image[img["id"]]
        assert got["size"] == [w, h]
        assert got["psnr_rgb"] == pytest.approx(ref_psnr(sr, hr, 4), rel=1e-12)
        assert got["psnr_y"] == pytest.approx(ref_psnr(sr, hr, 4, True), rel=1e-12)
        assert got["ssim_y"] == pytest.approx(cv2_ssim(sr, hr, 4, True), rel=1e-11)
        assert got["ssim_rgb"] == pytest.approx(cv2_ssim(sr, hr, 4), rel=1e-11)
    assert out["mean"]["psnr_y"] == pytest.approx(np.mean([i["psnr_y"] for i in out["images"]]), rel=1e-12)
    # People are bucketed by LR area (the SR area / 16): every non-crowd person with an area in range.
    people = [a for a in sr_doc["annotations"] if not a.get("iscrowd")]
    in_range = sum(1 for a in people if 0 < a["area"] / 16 <= 24 * 125)
    assert sum(b["people"] for b in out["buckets"]) == in_range - out["people_outside_crop"]


def test_command_frame_edges_csv_markdown(runner, chain):
    args = ["quality", "-q", "--origin-images", str(chain / "s/images"), str(chain / "sr.json"), "--frame", str(chain / "lr.json"), "--edges", "0,100,400,100000"]
    res = run_lrp(runner, args + ["--format", "csv"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].startswith("label,file,scope,area_lo,area_hi,count,psnr_rgb,ssim_rgb,psnr_y,ssim_y")
    assert len(lines) == 1 + 1 + 3
    # Small people are measured worse than large ones on the bicubic chain (the point of buckets).
    rows = [line.split(",") for line in lines[2:]]
    assert float(rows[0][8]) < float(rows[2][8])
    md = run_lrp(runner, args + ["--format", "markdown"])
    assert md.exit_code == 0 and "| PSNR RGB | SSIM RGB | PSNR Y | SSIM Y |" in md.stdout and "101-400" in md.stdout
    # --origin DOC (the original document) gives the same numbers as --origin-images.
    orig = json.loads((chain / "s/person_keypoints.json").read_text())
    orig["lrp"] = {"schema": "lrp/1", "image_root": str(chain / "s/images")}
    (chain / "orig.json").write_text(json.dumps(orig))
    res2 = run_lrp(runner, ["quality", "-q", "--origin", str(chain / "orig.json"), str(chain / "sr.json"), "--frame", str(chain / "lr.json"), "--edges", "0,100,400,100000", "--format", "csv"])
    assert res2.exit_code == 0, res2.output
    assert res2.stdout == res.stdout


def test_crop_border_option(runner, chain):
    base = ["quality", "-q", "--origin-images", str(chain / "s/images"), str(chain / "sr.json"), "--format", "json"]
    a = json.loads(run_lrp(runner, base + ["--crop-border", "0"]).stdout)["documents"][0]
    b = json.loads(run_lrp(runner, base).stdout)["documents"][0]
    assert a["crop_border"] == 0 and a["mean"]["psnr_rgb"] != b["mean"]["psnr_rgb"]


def test_bad_inputs(runner, chain, tmp_path):
    sr = str(chain / "sr.json")
    res = run_lrp(runner, ["quality", sr])
    assert res.exit_code == 2 and "--origin-images DIR or --origin DOC" in res.stderr
    res = run_lrp(runner, ["quality", "--origin-images", str(tmp_path / "none"), sr])
    assert res.exit_code == 2 and "not a folder" in res.stderr
    # The LR stage is no SR stage.
    res = run_lrp(runner, ["quality", "--origin-images", str(chain / "s/images"), str(chain / "lr.json")])
    assert res.exit_code == 1 and "no superres step" in res.stderr
    # A missing origin image is named.
    empty = tmp_path / "empty"
    empty.mkdir()
    res = run_lrp(runner, ["quality", "-q", "--origin-images", str(empty), sr])
    assert res.exit_code == 1 and "lrp quality: error: image 9001" in res.stderr and "file not found" in res.stderr
    # An origin document in another frame (the LR one) is refused, naming the image.
    res = run_lrp(runner, ["quality", "-q", "--origin", str(chain / "lr.json"), sr])
    assert res.exit_code == 1 and "image 9001 is" in res.stderr and "not the original document" in res.stderr
    res = run_lrp(runner, ["quality", "--origin-images", str(chain / "s/images"), sr, "--format", "xml"])
    assert res.exit_code == 2


def test_help_and_no_torch():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import sys, lrp.quality; print('torch' in sys.modules)"], capture_output=True, text=True)
    assert out.stdout.strip() == "False"
    from typer.testing import CliRunner

    res = run_lrp(CliRunner(), ["quality", "--help"])
    assert res.exit_code == 0 and "BasicSR" in res.stdout
