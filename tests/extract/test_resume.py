"""A run killed with SIGKILL and started again ends with exactly an uninterrupted run's keys."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from corpora.shards import iter_raw, shard_urls
from extract.cli import main
from extract.store import FeatureStore

ROOT = Path(__file__).resolve().parents[2]


def _keys(out: Path) -> list[str]:
    return [s["__key__"] for s in iter_raw(shard_urls(out, "features"))]


@pytest.mark.slow
def test_sigkill_then_rerun_equals_an_uninterrupted_run(tmp_path, test_preset):
    from skimage import data

    images = tmp_path / "images"
    images.mkdir()
    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    for i in range(12):
        photo = Image.fromarray(photos[i % 4]).resize((64 + 4 * i, 48))
        photo.save(images / f"im{i:02d}.png")
    preset = tmp_path / "preset.json"
    preset.write_text(json.dumps(test_preset.to_dict()))
    args = ["--images", str(images), "--preset", str(preset), "--maxcount", "2"]
    args += ["--batch-size", "1", "--boxes", "10-100", "--no-progress"]
    killed = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "extract.cli", *args, "--out", str(killed), "--threads", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: the decoding worker dies with it
    )
    try:
        deadline = time.time() + 120
        while not (killed / "features-000000.json").exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.time() < deadline, "no shard completed within 120 s"
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "manifest.json").exists()  # it really died mid-run
    done_before = _keys(killed)
    assert 2 <= len(done_before) < 12

    assert main([*args, "--out", str(killed), "--decode-workers", "0"]) == 0
    assert main([*args, "--out", str(tmp_path / "whole"), "--decode-workers", "0"]) == 0
    resumed, whole = _keys(killed), _keys(tmp_path / "whole")
    assert sorted(resumed) == sorted(whole) == [f"im{i:02d}" for i in range(12)]
    assert len(resumed) == len(set(resumed))  # none twice
    assert resumed[: len(done_before)] == done_before  # finished shards were kept, not redone
    assert not list(killed.glob("*.tmp"))
    manifest = json.loads((killed / "manifest.json").read_text())
    assert manifest["steps"]["resume"]["skipped_done"] == len(done_before)
    assert manifest["kept"] == 12 and manifest["inputs"] == 12
    a, b = FeatureStore(killed), FeatureStore(tmp_path / "whole")
    for key in whole:
        np.testing.assert_allclose(
            a[key].features.astype(np.float32),
            b[key].features.astype(np.float32),
            rtol=1e-2,
            atol=1e-3,
        )
        np.testing.assert_array_equal(a[key].boxes, b[key].boxes)
