"""docker/: the compose file validates with Compose itself, and the Dockerfiles pass hadolint."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DOCKERFILES = sorted((ROOT / "docker").glob("*.Dockerfile"))


def _tool(name: str) -> str:
    path = BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed (it is a dev dependency: pip install -e '.[dev]')")
    return found


def test_compose_config_resolves():
    out = subprocess.run(
        [_tool("docker-compose"), "-f", str(ROOT / "docker/docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    config = yaml.safe_load(out.stdout)
    services = config["services"]
    assert {"pipeline", "extract", "train"} <= services.keys()
    gpu = services["train"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert "gpu" in gpu["capabilities"]
    assert "msp-data" in config["volumes"]
    for name in ("pipeline", "extract", "train"):
        mounts = services[name]["volumes"]
        assert any(m["type"] == "volume" and m["source"] == "msp-data" for m in mounts), name


def test_compose_rejects_a_broken_file(tmp_path):
    bad = tmp_path / "compose.yml"
    bad.write_text("services:\n  train:\n    image: x\n    deploy: {resources: 3}\n")
    out = subprocess.run(
        [_tool("docker-compose"), "-f", str(bad), "config"], capture_output=True, text=True
    )
    assert out.returncode != 0


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfiles_lint_clean(dockerfile):
    out = subprocess.run(
        [_tool("hadolint"), str(dockerfile)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_catches_problems(tmp_path):
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    out = subprocess.run([_tool("hadolint"), str(bad)], capture_output=True, text=True)
    assert out.returncode != 0 and "DL3007" in out.stdout


def test_every_service_has_a_dockerfile():
    assert {p.name for p in DOCKERFILES} >= {
        "base.Dockerfile",
        "pipeline.Dockerfile",
        "extract.Dockerfile",
        "train.Dockerfile",
    }
