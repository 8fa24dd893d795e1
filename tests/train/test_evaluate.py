"""Retrieval metrics on a hand-made score matrix."""

from __future__ import annotations

import pytest
import torch

from train.evaluate import recall_metrics


def test_recalls_by_hand() -> None:
    # 3 images, 4 captions: captions 0,1 -> image 0; 2 -> image 1; 3 -> image 2
    caption_image = torch.tensor([0, 0, 1, 2])
    scores = torch.tensor(
        [
            [0.1, 0.9, 0.5, 0.0],  # image 0: its best caption (1) ranks first
            [0.8, 0.7, 0.6, 0.0],  # image 1: its caption 2 ranks third
            [0.3, 0.2, 0.1, 0.4],  # image 2: its caption 3 ranks first
        ]
    )
    m = recall_metrics(scores, caption_image)
    # TR ranks per image: 0, 2, 0 -> R@1 = 2/3, R@5 = R@10 = 1
    assert m["tr_r1"] == pytest.approx(200 / 3) and m["tr_r5"] == 100.0
    # IR ranks per caption: c0 col [.1,.8,.3] -> 2; c1 [.9,.7,.2] -> 0; c2 [.5,.6,.1] -> 0;
    # c3 [0,0,.4] -> 0  => R@1 = 3/4, R@5 = 1
    assert m["ir_r1"] == pytest.approx(75.0) and m["ir_r5"] == 100.0 and m["ir_r10"] == 100.0
    assert m["rsum"] == pytest.approx(200 / 3 + 100 + 100 + 75 + 100 + 100)
