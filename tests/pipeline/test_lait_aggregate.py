"""Aggregate step: over-shared descriptions are dropped, then each image keeps its best pair."""

from __future__ import annotations

import random

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.common import read_counters
from pipeline.lait_aggregate import LaitAggregate, description_key, rank_key
from pipeline.lait_config import LaitConfig


def pair(input_id: str, image_id: str, caption: str, score: float, source: str = "alt") -> dict:
    page, _, image = input_id.partition(" ")
    return {"input_id": input_id, "image_id": image_id, "caption": caption, "score": score,
            "text_source": source, "page_url": page, "image_url": image}  # fmt: skip


def test_description_key_and_rank():
    assert description_key("Product photo, from our STORE!") == "product photo from our store"
    a, b = pair("p1 i", "x", "c", 0.8, "alt"), pair("p2 i", "x", "c", 0.8, "figcaption")
    assert sorted([a, b], key=rank_key)[0] is b  # same score: the better text source
    c = pair("p0 i", "x", "c", 0.8, "figcaption")
    assert sorted([a, b, c], key=rank_key)[0] is c  # then the page URL


PAIRS = (
    # six images share one description (> K = 5): all six dropped
    [pair(f"shop{i} img{i}", f"s{i}", "Product photo from our store!", 0.9) for i in range(6)]
    # five images share another (= K): kept
    + [pair(f"gal{i} pic{i}", f"g{i}", "Holiday snapshot by the sea", 0.7) for i in range(5)]
    # one image on three pages: the best-scored pair wins, ties broken by source then page
    + [
        pair("pageB cat", "cat", "A grey cat asleep", 0.8, "alt"),
        pair("pageC cat", "cat", "A grey cat asleep on the sill", 0.8, "figcaption"),
        pair("pageA cat", "cat", "Cat", 0.5, "title"),
    ]
    # the image also carries the over-shared text on a fourth page: only that pair goes
    + [pair("shop9 cat", "cat", "Product photo from our store", 0.95)]
)


def test_lait_aggregate_transform():
    data = list(PAIRS)
    random.Random(3).shuffle(data)  # the outcome must not depend on the order
    p = BeamTestPipeline(runner="FnApiRunner")
    kept, rejects = p | beam.Create(data) | LaitAggregate(LaitConfig(inputs=[], out=""))
    assert_that(
        kept | beam.Map(lambda r: (r["input_id"], r["shared_count"], r["n_pairs"])),
        equal_to([(f"gal{i} pic{i}", 5, 1) for i in range(5)] + [("pageC cat", 1, 3)]),
        label="kept",
    )
    assert_that(
        rejects | beam.Map(lambda r: (r["input_id"], r["step"], r["reason"].split(":")[0])),
        equal_to(
            [(f"shop{i} img{i}", "aggregate", "shared description") for i in range(6)]
            + [("shop9 cat", "aggregate", "shared description")]
            + [(x, "aggregate", "duplicate image") for x in ("pageB cat", "pageA cat")]
        ),
        label="rejects",
    )
    result = p.run()
    result.wait_until_finish()
    counts = read_counters(result, "lait")
    assert counts["kept"] == 6
    assert counts["in.aggregate"] == len(PAIRS)
