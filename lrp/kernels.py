"""Blur kernels given with `--kernel`: one reader and one check, for degrade and superres.

A kernel file is `.npy`, whitespace-separated text, or a MATLAB v5 `.mat` (one matrix, or a cell
array of them: `FILE.mat:N` picks the N-th cell; a file named like USRNet's
`kernels_bicubicx234.mat` holds one kernel per scale, x2 x3 x4, and the scale picks it, as the
official `main_test_bicubic.py` does with `kernels[0, sf-2]`). Every kernel must be 2-D, finite
and sum to 1 within SUM_TOLERANCE; it is used as given (never renormalised), so that the
official kernels give the official results. Also here: the kernel that stands for a resize in
the classical degradation model (`fit_decimation_kernel`), for kernel-conditioned SR models.
No torch here.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import numpy as np

from lrp.errors import UsageError

# The one check of a 2-D blur kernel lives beside the Blur it builds (lrp.resize), so that
# resize never imports this module back.
from lrp.resize import SUM_TOLERANCE, check_kernel  # noqa: E402,F401


def load_kernel(spec: str, *, scale: int | None = None) -> tuple[np.ndarray, str]:
    """`--kernel spec` -> (checked float64 kernel, sha256 of the file); UsageError naming spec."""
    path, cell = _split_cell(spec)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise UsageError(f"--kernel {spec}: not a readable kernel file ({e.strerror or e})") from None
    try:
        if Path(path).suffix.lower() == ".mat":
            kernel = _from_mat(data, Path(path).name, cell, scale)
        elif cell is not None:
            raise ValueError("only .mat files hold several kernels to pick from")
        elif Path(path).suffix.lower() == ".npy":
            kernel = np.load(io.BytesIO(data), allow_pickle=False)
        else:
            kernel = np.loadtxt(io.StringIO(data.decode("utf-8")), ndmin=2)
        kernel = check_kernel(kernel)
    except (ValueError, UnicodeDecodeError, OSError) as e:
        raise UsageError(f"--kernel {spec}: {e}") from None
    return kernel, hashlib.sha256(data).hexdigest()


def _split_cell(spec: str) -> tuple[str, int | None]:
    m = re.fullmatch(r"(.+\.mat):(\d+)", spec, flags=re.IGNORECASE)
    return (m.group(1), int(m.group(2))) if m else (spec, None)


def _from_mat(data: bytes, name: str, cell: int | None, scale: int | None) -> np.ndarray:
    from lrp.sources.matlab import read_mat

    variables = read_mat(data)
    if len(variables) != 1:
        raise ValueError(f"expected one variable (a kernel or a cell array of kernels), found {len(variables)}: {', '.join(variables) or 'none'}")
    (var, value), = variables.items()
    if value.dtype != object:
        if cell is not None:
            raise ValueError(f"variable {var!r} is one kernel, there is no cell {cell} to pick")
        return value
    cells = list(value.reshape(-1, order="F"))
    if cell is None:
        scales = scales_in_name(name, len(cells))
        if scales is None:
            raise ValueError(f"holds {len(cells)} kernels; pick one with {name}:N (N = 1..{len(cells)})")
        if scale not in scales:
            wanted = "a scale" if scale is None else f"x{scale}"
            raise ValueError(f"holds the kernels of x{', x'.join(map(str, scales))}, not {wanted}; pick one with {name}:N")
        cell = scales.index(scale) + 1
    if not 1 <= cell <= len(cells):
        raise ValueError(f"holds {len(cells)} kernels, there is no cell {cell}")
    if cells[cell - 1].dtype == object:
        raise ValueError(f"cell {cell} is itself a cell array, not a kernel")
    return cells[cell - 1]


def scales_in_name(name: str, n: int | None = None) -> list[int] | None:
    """`kernels_bicubicx234.mat` (with n = 3 cells) -> [2, 3, 4], one digit per cell; else None."""
    m = re.search(r"x(\d+)\.mat$", name, flags=re.IGNORECASE)
    if m is None or (n is not None and len(m.group(1)) != n):
        return None
    return [int(c) for c in m.group(1)]


def fit_decimation_kernel(sf: int, method: str = "bicubic", blur=None, size: int = 25) -> np.ndarray:
    """The size x size kernel k for which `conv(x, k)[::sf, ::sf]` best matches lrp's own
    `resize(x, 1/sf)` (after `blur`, if any): a least-squares fit, one axis at a time (the
    resize is separable; a blur is a sum of separable terms, and the fit is linear)."""
    from lrp.resize import convolution_matrix, resize_matrix

    n = 8 * size * sf  # long enough for rows free of border effects
    resize = resize_matrix(n, n // sf, 1.0 / sf, 0.0, method)
    terms = [(None, None)] if blur is None else blur.terms

    def fit_1d(taps):
        m = resize if taps is None else resize @ convolution_matrix(n, taps)
        centre = size // 2
        rows = range(size, n // sf - size)  # interior rows: every one gives the same equations
        # conv then x[::sf]: output o reads input o*sf + centre - j with weight k[j].
        # Least squares over all interior rows = their average, row by row of k.
        k = np.zeros(size)
        for o in rows:
            k += m[o, o * sf + centre - np.arange(size)]
        return k / len(rows)

    kernel = sum(np.outer(fit_1d(v), fit_1d(h)) for v, h in terms)
    return kernel / kernel.sum()


def parse_blur(spec: str | None):
    """degrade's `--kernel`: `gaussian:SIGMA` or a kernel file -> (lrp.resize.Blur, sha256 or None)."""
    from lrp.resize import Blur

    if spec is None:
        return None, None
    if spec.startswith("gaussian:"):
        try:
            sigma = float(spec.split(":", 1)[1])
        except ValueError:
            sigma = float("nan")
        if not sigma > 0 or not np.isfinite(sigma):
            raise UsageError(f"--kernel {spec}: expected gaussian:SIGMA with SIGMA > 0")
        return Blur.gaussian(sigma), None
    kernel, digest = load_kernel(spec)
    return Blur.kernel(kernel, label=spec), digest
