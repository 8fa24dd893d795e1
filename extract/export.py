"""Feature shards to and from the LXMERT TSV, the format existing LXMERT-style code reads.

``msp export lxmert-tsv --features DIR --out FILE.tsv`` writes one tab-separated line per image,
no header, in the field order of LXMERT's ``load_obj_tsv``::

    img_id  img_h  img_w  objects_id  objects_conf  attrs_id  attrs_conf  num_boxes  boxes  features

The last six array fields are base64 of the raw little-endian bytes: ``objects_id`` and
``attrs_id`` int64 [N], ``objects_conf`` and ``attrs_conf`` float32 [N], ``boxes`` float32
[N,4] (x1,y1,x2,y2, original pixels), ``features`` float32 [N,2048] (our float16 features,
widened). Ids are 0-based lines of the vocab files, as in the shards.

``msp export lxmert-tsv-to-shards --tsv FILE.tsv --out DIR`` reads such a file (ours or a
released one, e.g. LXMERT's own) into feature shards with job records; rows that cannot be
used (bad key, malformed field, features beyond float16) are rejects with a reason.
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from corpora import jobio
from corpora.schema import FeatureSample, SchemaError, check_key
from extract.partition import WorkerShardWriter
from extract.store import PREFIX, FeatureStore

logger = logging.getLogger(__name__)

FIELDNAMES = [
    "img_id",
    "img_h",
    "img_w",
    "objects_id",
    "objects_conf",
    "attrs_id",
    "attrs_conf",
    "num_boxes",
    "boxes",
    "features",
]
# field -> (dtype, trailing shape); shapes are (num_boxes, *trailing), -1 = inferred
ARRAY_FIELDS = {
    "objects_id": (np.dtype("<i8"), ()),
    "objects_conf": (np.dtype("<f4"), ()),
    "attrs_id": (np.dtype("<i8"), ()),
    "attrs_conf": (np.dtype("<f4"), ()),
    "boxes": (np.dtype("<f4"), (4,)),
    "features": (np.dtype("<f4"), (-1,)),
}
FLOAT16_MAX = 65504.0


def _b64(array: np.ndarray, dtype: np.dtype) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode("ascii")


def sample_to_row(sample: FeatureSample) -> dict[str, str]:
    """One LXMERT TSV row (field -> text) for a feature sample."""
    arrays = {
        "objects_id": sample.obj_ids,
        "objects_conf": sample.obj_conf,
        "attrs_id": sample.attr_ids,
        "attrs_conf": sample.attr_conf,
        "boxes": sample.boxes,
        "features": sample.features,
    }
    row = {
        "img_id": sample.key,
        "img_h": str(int(sample.info["image_h"])),
        "img_w": str(int(sample.info["image_w"])),
        "num_boxes": str(sample.num_boxes),
    }
    row.update({k: _b64(arrays[k], dtype) for k, (dtype, _) in ARRAY_FIELDS.items()})
    return row


def decode_row(row: dict[str, str]) -> dict[str, Any]:
    """A TSV row as LXMERT decodes it: ints for sizes, numpy arrays for the array fields.
    Raises ValueError naming the field for malformed data."""
    item: dict[str, Any] = {"img_id": row["img_id"]}
    for key in ("img_h", "img_w", "num_boxes"):
        item[key] = int(row[key])
    boxes = item["num_boxes"]
    for key, (dtype, trailing) in ARRAY_FIELDS.items():
        try:
            data = np.frombuffer(base64.b64decode(row[key], validate=True), dtype=dtype)
            item[key] = data.reshape((boxes, *trailing))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"field {key}: {exc}") from None
    return item


def write_lxmert_tsv(
    features: str | os.PathLike, out: str | os.PathLike, keys: list[str] | None = None
) -> int:
    """Write the samples of feature shards ``features`` (all, or ``keys`` in that order) to
    the TSV ``out`` (atomically); returns the number of rows."""
    store = FeatureStore(features)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    samples = store.samples() if keys is None else (store[k] for k in keys)
    rows = 0
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, FIELDNAMES, delimiter="\t", lineterminator="\n")
        for sample in samples:
            writer.writerow(sample_to_row(sample))
            rows += 1
    os.replace(tmp, out)
    logger.info("wrote %d rows to %s", rows, out)
    return rows


def iter_lxmert_tsv(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, raw row) of an LXMERT TSV file."""
    csv.field_size_limit(sys.maxsize)
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh, FIELDNAMES, delimiter="\t")
        yield from enumerate(reader, start=1)


def _row_sample(row: dict[str, str], source: str) -> FeatureSample:
    item = decode_row(row)
    key = check_key(item["img_id"])
    feats = item["features"]
    if feats.size and not np.isfinite(feats).all():
        raise ValueError("features contain non-finite values")
    if feats.size and float(np.abs(feats).max()) > FLOAT16_MAX:
        raise ValueError("features overflow float16")
    num = item["num_boxes"]
    info = {
        "image_w": item["img_w"],
        "image_h": item["img_h"],
        "num_boxes": num,
        "box_mode": "fixed36" if num == 36 else "adaptive",
        "selection": "lxmert-tsv",
        "source": source,
    }
    return FeatureSample(
        key=key,
        boxes=item["boxes"],
        features=feats,
        obj_ids=item["objects_id"],
        obj_conf=item["objects_conf"],
        attr_ids=item["attrs_id"],
        attr_conf=item["attrs_conf"],
        info=info,
    )


def tsv_to_shards(
    tsv: str | os.PathLike, out: str | os.PathLike, *, maxcount: int = 1000
) -> dict[str, Any]:
    """Read an LXMERT TSV into feature shards under ``out`` with ``config.json``,
    ``manifest.json`` and ``rejects.jsonl``; rerunning skips complete shards. Returns the
    manifest."""
    start = time.time()
    out, tsv = Path(out), Path(tsv)
    jobio.write_config(out, {"tsv": str(tsv), "out": str(out), "maxcount": maxcount})
    counts = {"inputs": 0, "written": 0, "skipped_done": 0}
    rejects: list[dict[str, str]] = []
    seen: set[str] = set()
    with WorkerShardWriter(out, PREFIX, maxcount=maxcount) as writer:
        for lineno, row in iter_lxmert_tsv(tsv):
            counts["inputs"] += 1
            key = row.get("img_id") or f"line-{lineno}"
            try:
                if None in row.values() or None in row:
                    raise ValueError(f"expected {len(FIELDNAMES)} tab-separated fields")
                if key in seen:
                    raise ValueError("duplicate img_id: an earlier row has the same id")
                seen.add(key)
                if key in writer.skip_keys:
                    counts["skipped_done"] += 1
                    continue
                writer.write(_row_sample(row, tsv.name).to_wds())
                counts["written"] += 1
            except (ValueError, SchemaError) as exc:
                rejects.append(
                    {"input_id": key, "step": "read_tsv", "reason": f"line {lineno}: {exc}"}
                )
    jobio.write_rejects(out, rejects)
    jobio.write_manifest(
        out,
        "lxmert-tsv-to-shards",
        inputs=counts["inputs"],
        kept=counts["written"] + counts["skipped_done"],
        rejected=len(rejects),
        steps={"read_tsv": {"rejected": len(rejects)}, "write": {"written": counts["written"]}},
        outputs=[*writer.written, out / "rejects.jsonl"],
        seconds=time.time() - start,
    )
    return json.loads((out / "manifest.json").read_text())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="msp export", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    tsv = sub.add_parser("lxmert-tsv", help="feature shards -> LXMERT TSV (base64 fields)")
    tsv.add_argument("--features", required=True, metavar="DIR", help="feature shard folder")
    tsv.add_argument("--out", required=True, metavar="FILE", help="TSV file to write")
    tsv.add_argument("--keys", metavar="FILE", help="only these image keys, one per line")
    back = sub.add_parser("lxmert-tsv-to-shards", help="LXMERT TSV -> feature shards")
    back.add_argument("--tsv", required=True, metavar="FILE")
    back.add_argument("--out", required=True, metavar="DIR")
    back.add_argument("--maxcount", type=int, default=1000, metavar="N", help="samples per shard")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``msp export``; returns the exit status (2 for bad arguments/inputs)."""
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "lxmert-tsv":
            keys = None
            if args.keys:
                keys = [k.strip() for k in Path(args.keys).read_text().splitlines() if k.strip()]
            write_lxmert_tsv(args.features, args.out, keys)
        else:
            manifest = tsv_to_shards(args.tsv, args.out, maxcount=args.maxcount)
            logger.info(
                "%d rows: %d kept, %d rejected -> %s",
                manifest["inputs"],
                manifest["kept"],
                manifest["rejected"],
                args.out,
            )
    except (OSError, KeyError, ValueError) as exc:
        logger.error("msp export %s: %s", args.command, exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
