"""Install detectron2's Python package from the PyPI sdist, without its compiled ops.

detectron2's authors do not publish it on PyPI. The sdist ``pb1-detectron2==0.6`` carries the
whole Python package (its ``detectron2/`` equals upstream tag v0.6) but not the C++/CUDA sources,
so ``pip install pb1-detectron2`` fails while compiling. The VG bottom-up-attention detector
needs none of those ops, so this script:

1. downloads the sdist from the package index's simple API (pinned by sha256; pip itself refuses
   this sdist because its ``all`` extra declares a direct-URL dependency),
2. unpacks it under ``build/``,
3. replaces its ``setup.py`` with one that builds no extension, and
4. installs the result as the distribution ``detectron2`` (version 0.6) with ``--no-deps``
   (its runtime dependencies are listed in pyproject.toml).

``extract/d2compat.py`` then makes the package import on Pillow >= 10 and without ``detectron2._C``.
If detectron2 is already importable (an official build, or a previous run) nothing is done.
On a GPU host with internet, install the official build instead:
``pip install --no-build-isolation 'git+https://github.com/facebookresearch/detectron2.git'``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path

PROJECT = "pb1-detectron2"
FILENAME = "pb1-detectron2-0.6.tar.gz"
SHA256 = "5d2e9e51e523ec72f6a31cca04b0a515492e9514b773a3d134cedc0677170b29"
INDEX = os.environ.get("MSP_PYPI_SIMPLE", "https://pypi.org/simple")
SETUP_PY = """\
from setuptools import find_packages, setup

setup(
    name="detectron2",
    version="0.6",
    description="detectron2 v0.6 Python package (no compiled ops), from the pb1-detectron2 sdist",
    packages=find_packages(include=["detectron2", "detectron2.*"]),
    package_data={"detectron2": ["model_zoo/configs/**/*.yaml", "model_zoo/configs/**/*.py"]},
    include_package_data=True,
    python_requires=">=3.6",
)
"""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _download(target: Path) -> Path:
    """Fetch the sdist (PEP 691 JSON simple API) unless a verified copy is already there."""
    if target.exists() and _sha256(target) == SHA256:
        return target
    request = urllib.request.Request(
        f"{INDEX.rstrip('/')}/{PROJECT}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(request, timeout=120) as resp:
        files = json.load(resp)["files"]
    (entry,) = [f for f in files if f["filename"] == FILENAME]
    print(f"downloading {FILENAME}")
    tmp = target.with_suffix(".part")
    with urllib.request.urlopen(entry["url"], timeout=300) as resp, open(tmp, "wb") as fh:
        shutil.copyfileobj(resp, fh)
    if _sha256(tmp) != SHA256:
        tmp.unlink()
        raise SystemExit(f"{FILENAME}: sha256 mismatch (expected {SHA256})")
    os.replace(tmp, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", default="build/detectron2", type=Path)
    parser.add_argument("--force", action="store_true", help="reinstall even if importable")
    args = parser.parse_args(argv)

    if not args.force and importlib.util.find_spec("detectron2") is not None:
        print("detectron2 already installed; nothing to do")
        return 0

    build = args.build_dir
    dl = build / "dl"
    dl.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip"]
    archive = _download(dl / FILENAME)
    src = build / "src"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if "/detectron2/" in m.name + "/"]
        tar.extractall(src, members=members, filter="data")
    (root,) = [p for p in src.iterdir() if p.is_dir()]
    (root / "setup.py").write_text(SETUP_PY)
    for extra in ("setup.cfg", "pyproject.toml"):
        (root / extra).unlink(missing_ok=True)
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-build-isolation", str(root)],
        check=True,
    )
    print("installed detectron2 0.6 (Python package, no compiled ops)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
