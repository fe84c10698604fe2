# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""mmseg's DiceLoss, as RSRefSeg 2 configures it, against the hand formula.

The authors' Dice (their vendored ``mmseg/models/losses/dice_loss.py``) is
mmseg's V-Net form (squared denominators, eps 1e-3 added to each, mean over
the batch), fed the raw (B, 1, H, W) label map. Stock mmseg computes the same
function when given a target of the prediction's shape, which is how
``SAMPromptHead`` calls it (with ignored pixels removed: logit -100 and
target 0).
"""
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

DICE = dict(type='DiceLoss', use_sigmoid=True, loss_weight=5.0)


def vnet_dice(prob, target, eps=1e-3):
    """Per-sample 1 - 2 sum(p t) / (sum(p^2) + eps + sum(t^2) + eps)."""
    p, t = prob.flatten(1), target.flatten(1).float()
    return 1 - 2 * (p * t).sum(1) / ((p * p).sum(1) + eps +
                                     (t * t).sum(1) + eps)


def inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, 1, 8, 8, generator=g) * 3
    label = (torch.rand(3, 1, 8, 8, generator=g) > 0.6).long()
    label[2] = 0  # an empty target
    label[1, :, :, 6:] = 255  # right padding
    return logits, label


def test_config_is_the_vnet_formula_over_valid_pixels():
    init_default_scope('mmseg')
    loss = MODELS.build(DICE)
    logits, label = inputs()
    valid = label != 255
    target = (label == 1) & valid
    # SAMPromptHead's call
    got = loss(logits.masked_fill(~valid, -100.), target.float())
    per_sample = []
    for i in range(3):
        v = valid[i]
        per_sample.append(
            vnet_dice(logits[i][v].sigmoid()[None], target[i][v][None]))
    expected = 5 * torch.cat(per_sample).mean()
    torch.testing.assert_close(got, expected)
    assert loss.loss_name == 'loss_dice'


def test_authors_raw_label_target():
    """The authors' call: the raw label map (255 at padding) as target."""
    init_default_scope('mmseg')
    loss = MODELS.build(DICE)
    logits, label = inputs()
    got = loss(logits, label.float())
    expected = 5 * vnet_dice(logits.sigmoid(), label).mean()
    torch.testing.assert_close(got, expected)
    # padding changes it (255 enters both the overlap and the target norm)
    valid = label != 255
    fixed = loss(logits.masked_fill(~valid, -100.), (label == 1).float())
    assert (got - fixed).abs() > 1e-2
