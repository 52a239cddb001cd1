"""USRNet: official key layouts strict-load; the fitted bicubic kernel against the official one;
the data step and boundary handling. Random weights (plumbing), no real USRNet weights here."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lrp.kernels import fit_decimation_kernel
from lrp.models.usrnet import _dst1, data_step, p2o, prepare_lr, usrnet, wrap_boundary
from lrp.resize import resize_image
from matv5 import loadmat


def _keys(reference_dir, name):
    return json.loads((reference_dir / "checkpoint-keys" / name).read_text())["keys"]


@pytest.mark.parametrize(
    "manifest,kwargs,params",
    [
        ("usrnet.json", dict(n_iter=8, h_nc=64, nc=[64, 128, 256, 512]), 17_016_016),
        ("usrnet_tiny.json", dict(n_iter=6, h_nc=32, nc=[16, 32, 64, 64]), 590_332),
    ],
)
def test_architecture_matches_the_official_manifest(reference_dir, tmp_path, manifest, kwargs, params):
    from lrp.models.usrnet import convert_usrnet

    keys = _keys(reference_dir, manifest)
    model = usrnet(**kwargs)
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == keys
    assert sum(v.numel() for v in model.state_dict().values()) == params
    src = tmp_path / "usrnet.pth"
    torch.save({k: torch.full(shape, float(i)) for i, (k, shape) in enumerate(keys.items())}, src)
    state = convert_usrnet(src)
    model.load_state_dict(state, strict=True)
    assert [v.flatten()[0].item() for v in model.state_dict().values()] == list(range(len(keys)))


def test_fitted_bicubic_kernel_against_the_official_file(reference_dir):
    """lrp fits its own kernel (from its own MATLAB-bicubic downsampler); the official one was
    fitted by the USRNet authors. Same centre, sum 1, and every tap within 0.007 of theirs
    (their fit is not the exact matrix fit, so they are not identical)."""
    official = loadmat(reference_dir / "usrnet_kernels_bicubicx234.mat")["kernels"]
    for sf in (2, 3, 4):
        ref = official[0, sf - 2].astype(np.float64)
        ours = fit_decimation_kernel(sf)
        assert ours.shape == ref.shape == (25, 25)
        assert ours.sum() == pytest.approx(1.0)
        assert np.abs(ours - ref).max() < 0.007, sf
        # Both symmetric about the same point: 12 - (sf-1)/2 (10.5 for x4: peak at [10,10]/[10,11]).
        centre = 12 - (sf - 1) / 2
        for k in (ours, ref):
            profile = k.sum(0)
            assert abs((profile * np.arange(25)).sum() - centre) < 0.02


def test_fitted_kernel_reproduces_the_bicubic_downsampler():
    rng = np.random.default_rng(0)
    img = rng.random((64, 64)).astype(np.float64) * 255
    for sf in (2, 4):
        k = fit_decimation_kernel(sf)
        # Circular convolution (as USRNet's FFT does), then x[::sf].
        blurred = np.real(np.fft.ifft2(np.fft.fft2(img) * p2o(torch.from_numpy(k)[None, None], img.shape)[0, 0].numpy()))
        down = blurred[::sf, ::sf]
        ref = resize_image(img.astype(np.float32), 1 / sf)
        m = 16 // sf  # away from the borders (MATLAB mirrors, the FFT wraps)
        assert np.abs(down[m:-m, m:-m] - ref[m:-m, m:-m]).max() < 1e-3


def test_data_step_is_exact_when_alpha_is_small():
    """With alpha -> 0 the data step returns an x whose blur+decimation equals y exactly."""
    torch.manual_seed(0)
    sf, h, w = 2, 16, 16
    k = torch.from_numpy(fit_decimation_kernel(sf)).float()[None, None]
    y = torch.rand(1, 3, h, w, dtype=torch.float64)
    FB = p2o(k.double(), (h * sf, w * sf))
    STy = torch.zeros(1, 3, h * sf, w * sf, dtype=torch.float64)
    STy[..., ::sf, ::sf] = y
    FBFy = torch.conj(FB) * torch.fft.fftn(STy, dim=(-2, -1))
    x0 = torch.rand(1, 3, h * sf, w * sf, dtype=torch.float64)
    x = data_step(x0, FB, torch.conj(FB), FB.abs() ** 2, FBFy, torch.tensor(1e-9, dtype=torch.float64), sf)
    again = torch.real(torch.fft.ifftn(FB * torch.fft.fftn(x, dim=(-2, -1)), dim=(-2, -1)))[..., ::sf, ::sf]
    assert torch.allclose(again, y, atol=1e-5)


def test_dst_matches_its_definition():
    a = np.random.default_rng(1).random((5, 7))
    n = a.shape[1]
    j = np.arange(n)
    ref = np.stack([2 * (a * np.sin(np.pi * (k + 1) * (j + 1) / (n + 1))).sum(1) for k in range(n)], 1)
    assert np.allclose(_dst1(a, 1), ref)


def test_wrap_boundary_keeps_the_image_and_tiles_smoothly():
    img = np.random.default_rng(2).random((20, 24))
    out = wrap_boundary(img, (40, 48))
    assert out.shape == (40, 48)
    assert np.array_equal(out[:20, :24], img)
    # Periodic continuation: the jump across the wrap-around is no larger than inside the image.
    assert np.abs(out[-1] - out[0]).max() < 1.0 and np.abs(out[:, -1] - out[:, 0]).max() < 1.0


def test_tiny_usrnet_forward_pipeline():
    from lrp.models.usrnet import conditioned

    torch.manual_seed(0)
    net = usrnet(n_iter=2, h_nc=8, nc=[8, 8, 8, 8]).eval()
    fwd = conditioned(net, kernel=fit_decimation_kernel(2), scale=2, noise=0.0, device=torch.device("cpu"), dtype=torch.float32)
    with torch.inference_mode():
        y = fwd(torch.rand(2, 3, 10, 13))
    assert y.shape == (2, 3, 20, 26) and torch.isfinite(y).all()
    assert prepare_lr(np.zeros((10, 13, 3)), 2).shape == (20, 24, 3)  # ceil(2*10/8+2)*8/2 x ceil(2*13/8+2)*8/2
