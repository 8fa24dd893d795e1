"""Stage data: join accounting, decoding, ITM negatives, deterministic resume with workers."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from corpora.shards import ShardIndex
from train.data import StageStream, decode_image, make_loader
from train.tables import read_hard_negatives, read_text_table, split_keys
from train.text import TextEncoder


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder()


def stream(tiny_data, encoder, **kwargs) -> StageStream:
    args = dict(batch_size=3, num_boxes=6, feat_dim=16, split=None, shuffle_buffer=4)
    args.update(kwargs)
    return StageStream(tiny_data.features, tiny_data.text_sentence, encoder, **args)


def test_join_counts_and_warns_about_missing_features(tiny_data, encoder, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="train.data"):
        s = stream(tiny_data, encoder, split="train")
    st = s.stats
    assert (st.text_rows, st.rows_used, st.rows_missing_features) == (13, 12, 1)
    assert st.images_with_text == 6 and st.feature_images == 10
    assert st.feature_images_without_text == 4 and st.shards == 3
    assert tiny_data.missing_key in caplog.text and "no features" in caplog.text


def test_held_out_images_never_enter_training(tiny_data, encoder) -> None:
    held = set(tiny_data.keys[-4:])
    s = stream(
        tiny_data,
        encoder,
        held_out=held,
        negative_prob=1.0,
        hard_negatives=tiny_data.hard_negatives,
    )
    st = s.stats
    assert (st.rows_held_out, st.images_held_out, st.rows_used) == (8, 4, 12)
    assert st.text_rows == st.rows_used + st.rows_missing_features + st.rows_held_out
    it = iter(s)
    for _ in range(12):
        b = next(it)
        assert not (set(b.image_keys) | set(b.text_keys)) & held


def test_tables_from_job_folders(tmp_path, parquet_writer) -> None:
    write_table = parquet_writer
    folder = tmp_path / "token_labels"
    folder.mkdir()
    (folder / "manifest.json").write_text("{}")
    rows = [
        {"image_id": "a", "text": "ball, car", "split": None},
        {"image_id": "b", "text": "dog", "split": "test"},
        {"image_id": "c", "text": " ", "split": "train"},
    ]
    write_table(folder / "token_labels-00000-of-00002.parquet", rows[:2])
    write_table(folder / "token_labels-00001-of-00002.parquet", rows[2:])
    texts, count = read_text_table(folder, "train")
    assert texts == {"a": ["ball, car"]} and count == 1  # null split kept, empty text dropped
    assert split_keys(folder, "test") == {"b"}
    write_table(
        tmp_path / "hn.parquet",
        [
            {"image_id": "a", "neighbours": ["b", "c"], "duplicates": ["d"]},
            {"image_id": "b", "neighbours": [], "duplicates": []},
        ],
    )
    neighbours, duplicates = read_hard_negatives(tmp_path / "hn.parquet")
    assert neighbours == {"a": ["b", "c"], "b": []} and duplicates == {"a": ["d"]}
    with pytest.raises(ValueError, match="missing column"):
        read_text_table(tmp_path / "hn.parquet")


def test_decode_normalises_and_pads(tiny_data) -> None:
    raw = ShardIndex(tiny_data.features, "features").get(tiny_data.keys[-1])  # 4 boxes
    image = decode_image(raw, num_boxes=6, feat_dim=16)
    assert image["visual_mask"].tolist() == [True] * 4 + [False] * 2
    assert image["feats"].dtype == np.float32 and image["feats"].shape == (6, 16)
    assert (image["boxes"] >= 0).all() and (image["boxes"] <= 1).all()
    assert not image["boxes"][4:].any() and not image["feats"][4:].any()
    truncated = decode_image(raw, num_boxes=2, feat_dim=16)
    assert truncated["visual_mask"].all() and truncated["feats"].shape == (2, 16)
    with pytest.raises(ValueError, match="visual_feat_dim"):
        decode_image(raw, num_boxes=6, feat_dim=2048)


def test_itm_negatives_come_from_neighbours(tiny_data, encoder) -> None:
    s = stream(
        tiny_data,
        encoder,
        negative_prob=0.5,
        hard_negatives=tiny_data.hard_negatives,
        hard_negatives_top=2,
    )
    it = iter(s)
    batches = [next(it) for _ in range(20)]
    matched = np.concatenate([b.matched.numpy() for b in batches])
    assert 0.3 < matched.mean() < 0.7
    keys = tiny_data.keys
    for b in batches:
        for text_key, image_key, ok in zip(
            b.text_keys, b.image_keys, b.matched.tolist(), strict=True
        ):
            assert (text_key == image_key) == ok
            i = keys.index(text_key)
            if not ok and i < len(keys) - 2:  # images with neighbours: one of the top 2
                assert image_key in {keys[(i + 1) % 10], keys[(i + 2) % 10]}


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_mid_stream_is_exact(tiny_data, encoder, workers: int) -> None:
    def signature(start: int, count: int) -> list[tuple]:
        s = stream(
            tiny_data,
            encoder,
            negative_prob=0.5,
            hard_negatives=tiny_data.hard_negatives,
            start_batch=start,
        )
        it = iter(make_loader(s, workers))
        out = []
        for _ in range(count):
            b = next(it)
            out.append((tuple(b.image_keys), b.input_ids.sum().item(), b.feats.sum().item()))
        return out

    full = signature(0, 14)  # 20 examples per epoch: 42 cross two epoch boundaries
    assert signature(5, 9) == full[5:]
    assert signature(13, 1) == full[13:]
    assert len({k for sig in full for k in sig[0]}) == 10  # every image shows up
