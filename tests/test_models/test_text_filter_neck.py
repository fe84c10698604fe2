# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""TextFilterNeck against a literal, loop-based reading of the paper."""
import pytest
import torch
import torch.nn.functional as F

from mmrsrefseg.models import TextFilterNeck


def feats(b=2, c=16, t=5, h=27, w=27, lengths=(5, 3), bias=-1.5):
    torch.manual_seed(0)
    mask = torch.zeros(b, t, dtype=torch.bool)
    for i, n in enumerate(lengths):
        mask[i, :n] = True
    return dict(
        visual_feats=torch.randn(b, c, h, w),
        text_feats=torch.randn(b, t, c),
        text_mask=mask,
        text_embeds=torch.randn(b, c),
        logit_scale=torch.tensor(3.0),
        logit_bias=None if bias is None else torch.tensor(bias))


def reference_activation_features(f):
    """RSREFSEG.md stage 4 written out sample by sample, token by token."""
    s, b = f['logit_scale'], f['logit_bias']
    out, z_all = [], []
    for i in range(f['visual_feats'].shape[0]):
        v = f['visual_feats'][i]  # (C, h, w)
        acc = torch.zeros_like(v)
        tokens = [
            t for t in range(f['text_feats'].shape[1]) if f['text_mask'][i, t]
        ]
        for t in tokens:
            cos = F.cosine_similarity(
                v, f['text_feats'][i, t][:, None, None], dim=0)
            acc += torch.sigmoid(s * cos + b) * v
        f_local = (v + acc / len(tokens)) / 2
        z = s * F.cosine_similarity(
            v, f['text_embeds'][i][:, None, None], dim=0) + b
        f_global = torch.sigmoid(z) * v
        out.append(torch.cat([f_local, f_global, v]))
        z_all.append(z)
    return torch.stack(out), torch.stack(z_all)


def test_activation_matches_paper_formulas():
    f = feats()
    neck = TextFilterNeck(in_channels=16, prompt_channels=8)
    act = neck.activations(f)
    ref_feats, ref_z = reference_activation_features(f)
    torch.testing.assert_close(
        act['activation_features'], ref_feats, atol=1e-5, rtol=0)
    torch.testing.assert_close(act['global_logits'], ref_z, atol=1e-5, rtol=0)
    assert act['local_activation'].shape == (2, 5, 27, 27)
    # padding tokens carry no activation
    assert act['local_activation'][1, 3:].abs().max() == 0


def test_padding_tokens_are_ignored():
    f = feats(lengths=(5, 3))
    neck = TextFilterNeck(in_channels=16, prompt_channels=8).eval()
    pos = torch.randn(8, 27, 27)
    out = neck(f, pos)
    # change what sits in the padding positions: nothing may move
    f2 = dict(f, text_feats=f['text_feats'].clone())
    f2['text_feats'][1, 3:] = torch.randn(2, 16) * 100
    out2 = neck(f2, pos)
    torch.testing.assert_close(out['sparse_embeddings'],
                               out2['sparse_embeddings'])


def test_prompt_shapes_and_switches():
    f = feats()
    pos = torch.randn(8, 27, 27)
    neck = TextFilterNeck(
        in_channels=16,
        prompt_channels=8,
        num_downsample=2,
        mask_prompt_size=(256, 256))
    out = neck(f, pos)
    assert out['sparse_embeddings'].shape == (2, 49, 8)  # 27 -> 14 -> 7
    assert out['mask_prompt'].shape == (2, 1, 256, 256)
    # the dense prompt is Z_g upsampled: its mean stays Z_g's mean
    z = neck.activations(f)['global_logits']
    assert abs(out['mask_prompt'].mean() - z.mean()) < 0.05
    neck = TextFilterNeck(
        in_channels=16,
        prompt_channels=8,
        num_downsample=1,
        use_dense_prompt=False)
    out = neck(f, pos)
    assert out['sparse_embeddings'].shape == (2, 196, 8)  # 27 -> 14
    assert out['mask_prompt'] is None
    with pytest.raises(ValueError, match='pos_embed'):
        neck(f, torch.randn(8, 14, 14))


def test_logit_modes():
    f = feats(bias=None)  # CLIP: no bias from the backbone
    with pytest.raises(ValueError, match='backbone_scale'):
        TextFilterNeck(in_channels=16, prompt_channels=8).activations(f)
    neck = TextFilterNeck(
        in_channels=16,
        prompt_channels=8,
        logit_mode='backbone_scale',
        logit_bias_init=-1.5)
    ref, _ = reference_activation_features(feats(bias=-1.5))
    torch.testing.assert_close(
        neck.activations(f)['activation_features'], ref, atol=1e-5, rtol=0)
    assert [n for n, _ in neck.named_parameters()
            if 'logit' in n] == ['logit_bias']
    with pytest.raises(ValueError, match='logit_mode'):
        TextFilterNeck(in_channels=16, logit_mode='nope')


def _prompter_stds(convs):
    return [float(c.weight.std()) for c in convs]


def test_initial_weights_match_the_authors_construction():
    """The prompter is built and initialised as the authors' (mmcv
    ConvModule: Kaiming-normal fan-out, zero bias, norm weight 1 / bias 0),
    not with PyTorch's default conv init."""
    from mmrsrefseg.testing import (build_authors_from_config,
                                    tiny_siglip_rsrefseg_cfg)
    cfg = tiny_siglip_rsrefseg_cfg('unused-tokenizer', vocab_size=64)
    neck_cfg = dict(cfg['neck'])
    neck_cfg.pop('type')
    torch.manual_seed(0)
    ours = TextFilterNeck(**neck_cfg)
    ref = build_authors_from_config(cfg, lora=False)
    theirs = [ref.prompter_down_channel.conv
              ] + [m.conv for m in ref.prompter_down_spatial]
    mine = [ours.input_proj.conv] + [m.conv for m in ours.downsample
                                     ] + [ours.output_proj.conv]
    assert [tuple(c.weight.shape)
            for c in mine] == [tuple(c.weight.shape) for c in theirs]
    # Kaiming normal, fan-out: std = sqrt(2 / (out_channels * k * k))
    expected = [(2 / (c.out_channels * c.kernel_size[0]**2))**0.5
                for c in theirs]
    for got, want, authors in zip(
            _prompter_stds(mine), expected, _prompter_stds(theirs)):
        assert abs(got - want) < 0.1 * want
        assert abs(got - authors) < 0.15 * authors
    # PyTorch's default init would be far off (what the neck had before)
    default = torch.nn.Conv2d(mine[0].in_channels, mine[0].out_channels, 1)
    assert float(default.weight.std()) < 0.5 * expected[0]
    assert mine[-1].bias is not None and mine[-1].bias.abs().max() == 0
    for block in [ours.input_proj, *ours.downsample]:
        assert block.conv.bias is None
        assert torch.all(block.norm.weight == 1)
        assert torch.all(block.norm.bias == 0)
