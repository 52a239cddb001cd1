"""USRNet / USRGAN (Zhang, Van Gool, Timofte, CVPR 2020): deep unfolding SR, plain PyTorch.

Same parameter names as cszn/USRNet `models/network_usrnet_v1.py`: `p.*` the ResUNet prior (no
biases), `h.mlp.*` the HyPaNet; the data step `d` has no parameters. Each of the n iterations
solves the data term in closed form in the Fourier domain (FFT in float32 whatever the network
precision), then denoises with the ResUNet conditioned on beta_i.

Also here: the official test pipeline's boundary handling (`wrap_boundary_liu`) in numpy. The
blur kernel that stands for a resize (fitted, or USRNet's official file) is lrp.kernels'.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lrp.errors import UsageError

# --------------------------------------------------------------------------------------------
# Blocks


class ResBlock(nn.Module):
    def __init__(self, nc: int):
        super().__init__()
        self.res = nn.Sequential(nn.Conv2d(nc, nc, 3, 1, 1, bias=False), nn.ReLU(inplace=True), nn.Conv2d(nc, nc, 3, 1, 1, bias=False))

    def forward(self, x):
        return x + self.res(x)


def _down(nc_in: int, nc_out: int, nb: int) -> nn.Sequential:
    return nn.Sequential(*[ResBlock(nc_in) for _ in range(nb)], nn.Conv2d(nc_in, nc_out, 2, 2, 0, bias=False))


def _up(nc_in: int, nc_out: int, nb: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(nc_in, nc_out, 2, 2, 0, bias=False), *[ResBlock(nc_out) for _ in range(nb)])


class ResUNet(nn.Module):
    def __init__(self, in_nc: int = 4, out_nc: int = 3, nc=(64, 128, 256, 512), nb: int = 2):
        super().__init__()
        self.m_head = nn.Conv2d(in_nc, nc[0], 3, 1, 1, bias=False)
        self.m_down1 = _down(nc[0], nc[1], nb)
        self.m_down2 = _down(nc[1], nc[2], nb)
        self.m_down3 = _down(nc[2], nc[3], nb)
        self.m_body = nn.Sequential(*[ResBlock(nc[3]) for _ in range(nb)])
        self.m_up3 = _up(nc[3], nc[2], nb)
        self.m_up2 = _up(nc[2], nc[1], nb)
        self.m_up1 = _up(nc[1], nc[0], nb)
        self.m_tail = nn.Conv2d(nc[0], out_nc, 3, 1, 1, bias=False)

    def forward(self, x):
        h, w = x.shape[-2:]
        x = F.pad(x, (0, -w % 8, 0, -h % 8), mode="replicate")
        x1 = self.m_head(x)
        x2 = self.m_down1(x1)
        x3 = self.m_down2(x2)
        x4 = self.m_down3(x3)
        x = self.m_body(x4)
        x = self.m_up3(x + x4)
        x = self.m_up2(x + x3)
        x = self.m_up1(x + x2)
        x = self.m_tail(x + x1)
        return x[..., :h, :w]


class HyPaNet(nn.Module):
    def __init__(self, in_nc: int = 2, out_nc: int = 16, channel: int = 64):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Conv2d(in_nc, channel, 1, bias=True), nn.ReLU(inplace=True),
            nn.Conv2d(channel, channel, 1, bias=True), nn.ReLU(inplace=True),
            nn.Conv2d(channel, out_nc, 1, bias=True), nn.Softplus(),
        )

    def forward(self, x):
        return self.mlp(x) + 1e-6


# --------------------------------------------------------------------------------------------
# The data step (closed form, Fourier domain)


def p2o(psf: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Optical transfer function of a kernel for an image of `shape`: zero-pad, centre at (0,0), FFT."""
    otf = psf.new_zeros(psf.shape[:-2] + tuple(shape))
    otf[..., : psf.shape[-2], : psf.shape[-1]] = psf
    otf = torch.roll(otf, (-(psf.shape[-2] // 2), -(psf.shape[-1] // 2)), dims=(-2, -1))
    return torch.fft.fftn(otf, dim=(-2, -1))


def _block_mean(a: torch.Tensor, sf: int) -> torch.Tensor:
    """Split H and W into sf blocks each and average the sf^2 blocks (`splits` + mean)."""
    n, c, h, w = a.shape
    return a.view(n, c, sf, h // sf, sf, w // sf).mean(dim=(2, 4))


def data_step(x, FB, FBC, F2B, FBFy, alpha, sf: int):
    FR = FBFy + torch.fft.fftn(alpha * x, dim=(-2, -1))
    FBR = _block_mean(FB * FR, sf)
    invW = _block_mean(F2B, sf)
    FCBinvWBR = FBC * (FBR / (invW + alpha)).repeat(1, 1, sf, sf)
    return torch.real(torch.fft.ifftn((FR - FCBinvWBR) / alpha, dim=(-2, -1)))


class USRNet(nn.Module):
    def __init__(self, n_iter: int = 8, h_nc: int = 64, in_nc: int = 4, out_nc: int = 3, nc=(64, 128, 256, 512), nb: int = 2):
        super().__init__()
        self.p = ResUNet(in_nc, out_nc, nc, nb)
        self.h = HyPaNet(2, n_iter * 2, h_nc)
        self.n = n_iter

    def forward(self, x: torch.Tensor, k: torch.Tensor, sf: int, sigma: torch.Tensor) -> torch.Tensor:
        """x: (N,3,h,w) LR in [0,1]; k: (N or 1,1,kh,kw) blur kernel; sigma: (N,1,1,1) noise/255."""
        prior_dtype = x.dtype
        x = x.float()
        h, w = x.shape[-2:]
        FB = p2o(k.float(), (h * sf, w * sf))
        FBC = torch.conj(FB)
        F2B = FB.abs() ** 2
        STy = x.new_zeros(x.shape[:-2] + (h * sf, w * sf))
        STy[..., ::sf, ::sf] = x
        FBFy = FBC * torch.fft.fftn(STy, dim=(-2, -1))
        x = F.interpolate(x, scale_factor=sf, mode="nearest")
        sigma = sigma.float()
        ab = self.h(torch.cat((sigma, torch.full_like(sigma, float(sf))), dim=1).to(prior_dtype)).float()
        for i in range(self.n):
            x = data_step(x, FB, FBC, F2B, FBFy, ab[:, i : i + 1], sf)
            beta = ab[:, i + self.n : i + self.n + 1].expand(-1, 1, x.shape[2], x.shape[3])
            x = self.p(torch.cat((x, beta), dim=1).to(prior_dtype).contiguous(memory_format=torch.channels_last)).float()
        return x


def usrnet(n_iter: int = 8, h_nc: int = 64, nc=(64, 128, 256, 512)) -> USRNet:
    """usrnet/usrgan: USRNet(8, 64, nc=[64,128,256,512]), 17,016,016 parameters; tiny: (6, 32, [16,32,64,64])."""
    return USRNet(n_iter=n_iter, h_nc=h_nc, nc=tuple(nc))


def convert_usrnet(src) -> dict:
    """`lrp weights convert usrnet|usrnet-tiny FILE.pth`: the official keys are lrp's keys."""
    from lrp.sources.checkpoints import read_torch_checkpoint

    return read_torch_checkpoint(src)


# --------------------------------------------------------------------------------------------
# Kernels


# --------------------------------------------------------------------------------------------
# The official test pipeline around the network


def _dst1(a: np.ndarray, axis: int) -> np.ndarray:
    """Unnormalised DST-I along `axis` (scipy.fftpack.dst type 1), by FFT of the odd extension."""
    a = np.moveaxis(a, axis, -1)
    n = a.shape[-1]
    zeros = np.zeros(a.shape[:-1] + (1,))
    ext = np.concatenate([zeros, a, zeros, -a[..., ::-1]], axis=-1)
    out = -np.imag(np.fft.fft(ext, axis=-1))[..., 1 : n + 1]
    return np.moveaxis(out, -1, axis)


def _solve_min_laplacian(boundary: np.ndarray) -> np.ndarray:
    h, w = boundary.shape
    b = boundary.copy()
    b[1:-1, 1:-1] = 0
    f_bp = np.zeros((h, w))
    f_bp[1:-1, 1:-1] = -4 * b[1:-1, 1:-1] + b[1:-1, 2:] + b[1:-1, :-2] + b[:-2, 1:-1] + b[2:, 1:-1]
    f2 = -f_bp[1:-1, 1:-1]
    f2sin = _dst1(_dst1(f2, 1) / 2, 0) / 2
    x, y = np.meshgrid(np.arange(1, w - 1), np.arange(1, h - 1))
    denom = (2 * np.cos(np.pi * x / (w - 1)) - 2) + (2 * np.cos(np.pi * y / (h - 1)) - 2)
    f3 = f2sin / denom
    tt = _dst1(f3 * 2, 0) / (2 * (f3.shape[0] + 1))
    img_tt = _dst1(tt * 2, 1) / (2 * (tt.shape[1] + 1))
    b[1:-1, 1:-1] = img_tt
    return b


def wrap_boundary(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Liu & Jia (ICIP 2008): extend a 2-D image to `size` so that it tiles smoothly (for FFTs)."""
    H, W = img.shape
    H_w, W_w = int(size[0]) - H, int(size[1]) - W
    r_A = np.zeros((2 + H_w, W))
    r_A[:1, :] = img[-1:, :]
    r_A[-1:, :] = img[:1, :]
    a = np.arange(H_w) / (H_w - 1)
    r_A[1:-1, 0] = (1 - a) * r_A[0, 0] + a * r_A[-1, 0]
    r_A[1:-1, -1] = (1 - a) * r_A[0, -1] + a * r_A[-1, -1]
    r_B = np.zeros((H, 2 + W_w))
    r_B[:, :1] = img[:, -1:]
    r_B[:, -1:] = img[:, :1]
    a = np.arange(W_w) / (W_w - 1)
    r_B[0, 1:-1] = (1 - a) * r_B[0, 0] + a * r_B[0, -1]
    r_B[-1, 1:-1] = (1 - a) * r_B[-1, 0] + a * r_B[-1, -1]
    r_A = _solve_min_laplacian(r_A)
    r_B = _solve_min_laplacian(r_B)
    r_C = np.zeros((2 + H_w, 2 + W_w))
    r_C[:1, :] = r_B[-1:, :]
    r_C[-1:, :] = r_B[:1, :]
    r_C[:, :1] = r_A[:, -1:]
    r_C[:, -1:] = r_A[:, :1]
    r_C = _solve_min_laplacian(r_C)
    A = r_A[:-2, :]
    B = r_B[:, 1:-1]
    C = r_C[1:-1, 1:-1]
    return np.vstack((np.hstack((img, B)), np.hstack((A, C))))


def prepare_lr(lr: np.ndarray, sf: int) -> np.ndarray:
    """main_test_bicubic.py: nearest-upsample, wrap the boundary to a multiple of 8 (+16), take
    every sf-th pixel, paste the original LR back top-left. HxWxC float in [0,1]."""
    h, w = lr.shape[:2]
    up = lr.repeat(sf, axis=0).repeat(sf, axis=1).astype(np.float64)
    size = (int(math.ceil(sf * h / 8 + 2) * 8), int(math.ceil(sf * w / 8 + 2) * 8))
    wrapped = np.stack([wrap_boundary(up[:, :, c], size) for c in range(up.shape[2])], axis=2)
    out = wrapped[::sf, ::sf].copy()
    out[:h, :w] = lr
    return out


def conditioned(net: USRNet, *, kernel: np.ndarray, scale: int, noise: float, device, dtype):
    """The network as a function of the LR batch alone, in the official bicubic test's way."""
    if kernel is None:
        raise UsageError("USRNet needs a blur kernel (--kernel FILE, or a document whose lrp.degradation says how it was made)")
    k = torch.as_tensor(kernel, dtype=torch.float32, device=device)[None, None]
    sigma_value = noise / 255.0

    def forward(x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        batch = x.float().permute(0, 2, 3, 1).cpu().numpy()
        padded = np.stack([prepare_lr(img, scale) for img in batch])
        lr = torch.from_numpy(padded).float().permute(0, 3, 1, 2).to(device)
        sigma = torch.full((n, 1, 1, 1), sigma_value, device=device)
        out = net(lr.to(dtype), k, scale, sigma.to(dtype))
        return out[..., : h * scale, : w * scale]

    return forward
