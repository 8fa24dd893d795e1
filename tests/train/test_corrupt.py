"""Input corruptions: BERT token masking, LXMERT region masking, IFRS triplet shuffles."""

from __future__ import annotations

import torch

from train.tasks.corrupt import mask_regions, mask_tokens, shuffle_triplets

SPECIAL = [0, 101, 102, 103]


def test_mask_tokens_rates_and_specials() -> None:
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(2000, 3000, (400, 20))
    ids[:, 0], ids[:, 15], ids[:, 16:] = 101, 102, 0
    attention = ids != 0
    new, labels = mask_tokens(ids, attention, 0.15, gen, 103, 999, 30522, SPECIAL)
    chosen = labels != -100
    assert not chosen[:, [0, 15, 16, 19]].any()  # never [CLS], [SEP], padding
    assert torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(new[~chosen], ids[~chosen])
    rate = chosen.sum() / attention[:, 1:15].sum()
    assert 0.13 < rate < 0.17
    masked = (new[chosen] == 103).float().mean()
    kept = (new[chosen] == ids[chosen]).float().mean()
    assert 0.76 < masked < 0.84 and 0.07 < kept < 0.13
    replaced = new[chosen][(new[chosen] != 103) & (new[chosen] != ids[chosen])]
    assert replaced.numel() > 0 and (replaced >= 999).all()  # random words, never specials
    again = mask_tokens(
        ids, attention, 0.15, torch.Generator().manual_seed(0), 103, 999, 30522, SPECIAL
    )
    assert torch.equal(again[0], new) and torch.equal(again[1], labels)


def test_mask_regions_zero_random_keep() -> None:
    gen = torch.Generator().manual_seed(1)
    feats = torch.rand(300, 10, 4) + 1.0  # no zero features
    visual = torch.ones(300, 10, dtype=torch.bool)
    visual[:, 8:] = False
    exclude = torch.zeros_like(visual)
    exclude[:, 0] = True
    out, chosen = mask_regions(feats, visual, 0.15, gen, exclude=exclude)
    assert not chosen[:, [0, 8, 9]].any()
    assert 0.12 < chosen.sum() / (300 * 7) < 0.18
    zeroed = (out[chosen] == 0).all(-1).float().mean()
    same = (out[chosen] == feats[chosen]).all(-1).float().mean()
    assert 0.75 < zeroed < 0.85 and 0.06 < same < 0.15
    assert torch.equal(out[~chosen], feats[~chosen])
    donors = out[chosen][~(out[chosen] == 0).all(-1)]
    assert (donors >= 1.0).all()  # random replacements are real regions' features


def test_shuffle_triplets_moves_whole_regions_within_triplets() -> None:
    gen = torch.Generator().manual_seed(2)
    b, n = 50, 8  # two whole triplets and a trailing pair
    feats = torch.arange(b * n, dtype=torch.float).view(b, n, 1).expand(b, n, 3).clone()
    boxes = feats[..., :1].expand(b, n, 4).clone()
    visual = torch.ones(b, n, dtype=torch.bool)
    visual[0, 5] = False  # pair 0's second triplet is not whole: never shuffled
    new, new_boxes, shuffled = shuffle_triplets(feats, boxes, visual, 0.5, gen)
    assert torch.equal(new[..., 0], new_boxes[..., 0])  # boxes travel with their features
    assert not shuffled[:, 6:].any() and not shuffled[0, 3:6].any()
    for t in range(2):
        part = slice(3 * t, 3 * t + 3)
        same_set = torch.sort(new[:, part, 0], dim=1).values == feats[:, part, 0]
        assert same_set.all()  # a permutation inside the triplet
        moved = (new[:, part, 0] != feats[:, part, 0]).any(dim=1)
        assert torch.equal(moved, shuffled[:, 3 * t])  # shuffled triplets really change order
    assert torch.equal(new[~shuffled], feats[~shuffled])
    assert 0.3 < shuffled[:, ::3][:, :2].float().mean() < 0.7
