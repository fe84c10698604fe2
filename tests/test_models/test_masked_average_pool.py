# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""masked_average_pool on a hand-made label map."""
import pytest
import torch

from mmrsrefseg.models.utils import masked_average_pool


def test_mask_resized_to_the_grid_and_ignore_modes():
    # 4x4 -> 2x2 with align_corners=True samples the four corners exactly
    label = torch.zeros(1, 4, 4, dtype=torch.long)
    label[0, 0, 0] = 1
    label[0, 3, 3] = 1
    label[0, 0, 3] = 255  # padding at the top-right corner
    feats = torch.arange(8.).reshape(1, 2, 2, 2)  # channel 0: 0..3, 1: 4..7
    out = masked_average_pool(feats, label)
    torch.testing.assert_close(out, torch.tensor([[1.5, 5.5]]))  # (0, 3)
    raw = masked_average_pool(feats, label[:, None], ignore_mode='raw')
    torch.testing.assert_close(raw, torch.tensor([[4 / 3, 16 / 3]]))
    # empty mask: zero vector
    empty = masked_average_pool(feats, torch.zeros(1, 4, 4, dtype=torch.long))
    assert torch.equal(empty, torch.zeros(1, 2))
    with pytest.raises(ValueError, match='ignore_mode'):
        masked_average_pool(feats, label, ignore_mode='keep')


def test_same_grid_is_a_plain_masked_mean():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 3, 5, 5, generator=g)
    label = (torch.rand(2, 5, 5, generator=g) > 0.5).long()
    out = masked_average_pool(feats, label)
    for i in range(2):
        m = label[i].bool()
        torch.testing.assert_close(out[i], feats[i][:, m].mean(1))
