"""The shared job conventions, exercised through a real Beam pipeline on the in-process runner."""

from __future__ import annotations

import argparse
import json
import time

import apache_beam as beam
import pytest

from corpora.jobio import AccountingError
from pipeline import common


class KeepEven(beam.DoFn):
    def __init__(self) -> None:
        self.counters = common.Counters("toy")

    def process(self, x: int):
        self.counters.inc("inputs")
        if x % 2:
            yield common.reject(x, "parity", "odd number")
        else:
            self.counters.inc("kept")
            yield x


def _run(tmp_path, data):
    parser = argparse.ArgumentParser()
    args, options = common.parse_args(parser, [])
    assert "--runner=FnApiRunner" in args.beam_args
    started = time.time()
    p = beam.Pipeline(options=options)
    outs = p | beam.Create(data) | beam.ParDo(KeepEven()).with_outputs(common.REJECTS, main="kept")
    _ = outs.rejects | common.WriteRejects(tmp_path, "toy")
    result = p.run()
    result.wait_until_finish()
    return common.finish_job(tmp_path, "toy", result, {"n": len(data)}, started=started)


def test_manifest_counts_and_rejects(tmp_path):
    manifest = _run(tmp_path, list(range(7)))
    assert (manifest["inputs"], manifest["kept"], manifest["rejected"]) == (7, 4, 3)
    assert manifest["steps"]["parity"]["rejected"] == 3
    rejects = [json.loads(line) for f in tmp_path.glob("rejects-*.jsonl") for line in f.open()]
    assert sorted(r["input_id"] for r in rejects) == ["1", "3", "5"]
    assert {r["reason"] for r in rejects} == {"odd number"}
    assert common.job_complete(tmp_path, {"n": 7})
    assert not common.job_complete(tmp_path, {"n": 8})


def test_accounting_mismatch_refuses_manifest(tmp_path):
    from corpora import jobio

    with pytest.raises(AccountingError, match="inputs=5"):
        jobio.write_manifest(tmp_path, "toy", inputs=5, kept=3, rejected=1)
    assert not (tmp_path / "manifest.json").exists()


def test_beam_flags_pass_through():
    args, options = common.parse_args(argparse.ArgumentParser(), ["--runner=DirectRunner", "--x=1"])
    assert args.beam_args == ["--runner=DirectRunner", "--x=1"]
    assert options.get_all_options(retain_unknown_options=True)["runner"] == "DirectRunner"
