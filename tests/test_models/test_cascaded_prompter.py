# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""CascadedPrompter against the authors' prompter.

The reference (:class:`mmrsrefseg.testing.authors_cascaded_prompter.
AuthorsCascadedPrompter`) rebuilds the authors' prompter (KyanChen/
RSRefSeg2, ``refseg/models/models.py``) with their module names and op
lists; its weights reach ours through the released-checkpoint converter's
name table, loaded strictly.
"""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmrsrefseg.models import CascadedPrompter
from mmrsrefseg.models.necks.cascaded_prompter import masked_adaptive_avg_pool
from mmrsrefseg.testing.authors_cascaded_prompter import \
    AuthorsCascadedPrompter
from mmrsrefseg.utils.authors_rsrefseg2_checkpoint import \
    convert_authors_rsrefseg2

C, P, HEADS, ATTN, FFN_DIM, NQ, NP = 32, 16, 2, 16, 24, 3, 4
TINY = dict(
    in_channels=C,
    prompt_channels=P,
    num_queries=NQ,
    num_prompts=NP,
    num_heads=HEADS,
    attn_channels=ATTN,
    ffn_channels=FFN_DIM,
    image_grid=(4, 4),
    mask_prompt_size=(12, 12))


def authors_forward(m, f):
    """The authors' prompter (mmrsrefseg.testing) on our feature dict."""
    visual = f['visual_feats']
    out = m(
        clip_visual_feat=visual.flatten(2).transpose(1, 2),
        clip_text_feat=f['text_feats'],
        clip_text_feat_pooler=f['text_embeds'],
        logit_scale=f['logit_scale'].log(),
        logit_bias=f['logit_bias'],
        mask_size=TINY['mask_prompt_size'][0])
    return dict(
        sparse_embeddings=out['sparse_prompts'],
        mask_prompt=out['dense_prompts'],
        query_mean_1=out['text_queries1'].mean(1),
        query_mean_2=out['text_queries2'].mean(1))


def perturbed(model):
    """Random weights everywhere (norms, biases and BN statistics too), at
    a scale that keeps the attention softmaxes away from saturation."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith('running_var') or 'norm' in name or (
                    'dense_prompt_conv.1.' in name
                    and name.endswith('weight')):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif 'embed' in name or t.dim() == 1:
                t.copy_(torch.randn(t.shape, generator=g) * 0.5)
            else:
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=g) / fan_in**0.5)
    return model


def features(lengths=(6, 2, 4), grid=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    b, t = len(lengths), max(lengths)
    mask = torch.arange(t)[None] < torch.tensor(lengths)[:, None]
    text = torch.randn(b, t, C, generator=g)
    text[~mask] = torch.randn(int((~mask).sum()), C, generator=g) * 5
    return dict(
        visual_feats=torch.randn(b, C, grid, grid, generator=g),
        text_feats=text,
        text_mask=mask,
        text_embeds=torch.randn(b, C, generator=g),
        logit_scale=torch.tensor(7.),
        logit_bias=torch.tensor(-3.))


def sample(f, i):
    """Sample i alone, without padding (the authors' batch-1 input)."""
    n = int(f['text_mask'][i].sum())
    out = {k: v[i:i + 1] for k, v in f.items() if v.dim() > 0}
    out['text_feats'] = out['text_feats'][:, :n]
    out['text_mask'] = out['text_mask'][:, :n]
    return dict(out, logit_scale=f['logit_scale'], logit_bias=f['logit_bias'])


def pair(**kwargs):
    """The authors' prompter with random weights, and ours with the same
    weights through the released-checkpoint converter (strict)."""
    theirs = perturbed(
        AuthorsCascadedPrompter(
            text_dim=C,
            img_dim=C,
            prompt_dim=P,
            img_pe_size=4,
            num_text_queries=NQ,
            num_prompts=NP,
            num_heads=HEADS,
            mlp_dim=FFN_DIM,
            internal_dim=ATTN))
    state, _ = convert_authors_rsrefseg2({
        f'prompter.{k}': v
        for k, v in theirs.state_dict().items()
    })
    ours = CascadedPrompter(**dict(TINY, **kwargs))
    ours.load_state_dict({
        k[len('neck.'):]: v
        for k, v in state.items()
    },
                         strict=True)
    return ours, theirs


KEYS = ('sparse_embeddings', 'mask_prompt', 'query_mean_1', 'query_mean_2')


@pytest.mark.parametrize('train', [False, True])
@pytest.mark.parametrize('grid', [4, 5])
def test_batch_mode_equals_authors(train, grid):
    ours, theirs = pair(text_padding='batch')
    ours.train(train)
    theirs.train(train)
    f = features(grid=grid)
    with torch.no_grad():
        out, ref = ours(f), authors_forward(theirs, f)
    for k in KEYS:
        assert out[k].shape == ref[k].shape
        torch.testing.assert_close(out[k], ref[k], atol=1e-5, rtol=1e-5)
    assert out['mask_prompt'].shape == (3, 1, 12, 12)
    assert out['sparse_embeddings'].shape == (3, NP, P)
    torch.testing.assert_close(
        out['mask_prompt'],
        out['dense_similarity'] * 7. - 3.,
        atol=1e-5,
        rtol=0)
    assert out['dense_similarity'].abs().max() <= 1 + 1e-6


def test_per_sample_is_batch_independent():
    ours, theirs = pair(text_padding='per_sample')
    ours.eval()
    theirs.eval()
    f = features(lengths=(6, 2, 4, 1))
    batch_mode = CascadedPrompter(**dict(TINY, text_padding='batch')).eval()
    batch_mode.load_state_dict(ours.state_dict())
    with torch.no_grad():
        out = ours(f)
        out_batch = batch_mode(f)
        for i in range(4):
            alone = sample(f, i)
            ref = authors_forward(theirs, alone)
            for k in KEYS:
                torch.testing.assert_close(
                    out[k][i:i + 1], ref[k], atol=1e-5, rtol=1e-5)
            # the authors' padding changes every padded sample's output
            diff = (out_batch['sparse_embeddings'][i:i + 1] -
                    ref['sparse_embeddings']).abs().max()
            assert (diff > 1e-3) == (i != 0), (i, diff)


def test_masked_pool_equals_adaptive_pool_per_sample():
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(7, 9, 5, generator=g)
    lengths = torch.arange(1, 8)
    mask = torch.arange(9)[None] < lengths[:, None]
    for bins in (1, 3, 4):
        pooled = masked_adaptive_avg_pool(tokens, mask, bins)
        for i, n in enumerate(lengths.tolist()):
            ref = F.adaptive_avg_pool1d(tokens[i:i + 1, :n].transpose(1, 2),
                                        bins).transpose(1, 2)
            torch.testing.assert_close(pooled[i:i + 1], ref)
    # real tokens anywhere (left padding): the order of the real ones counts
    left = torch.flip(mask, [1])
    pooled = masked_adaptive_avg_pool(torch.flip(tokens, [1]), left, 3)
    ref = masked_adaptive_avg_pool(tokens, mask, 3)
    # flipping reverses the token order, hence the bin order
    torch.testing.assert_close(pooled, torch.flip(ref, [1]))


def test_default_size_shapes_and_init():
    torch.manual_seed(0)
    m = CascadedPrompter().eval()
    n_params = sum(p.numel() for p in m.parameters())
    assert n_params == 82_773_312
    before = {k: v.clone() for k, v in m.state_dict().items()}
    m.init_weights()  # mmengine's init must keep the authors' defaults
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k]), k

    def uniform_ok(t, fan_in):
        bound = 1 / math.sqrt(fan_in)
        assert t.abs().max() <= bound
        assert abs(t.std().item() - bound / math.sqrt(3)) < 0.03 * bound

    # nn.Linear / nn.Conv2d defaults: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    lay = m.step2_layers[1].prompt_query_attn
    uniform_ok(lay.q_proj.weight, 256)
    uniform_ok(lay.k_proj.weight, 1152)
    uniform_ok(lay.out_proj.weight, 512)
    uniform_ok(lay.ffn.layers[0][0].weight, 256)
    uniform_ok(lay.ffn.layers[1].weight, 512)
    uniform_ok(m.dense_conv[0].weight, 1152 * 9)
    uniform_ok(m.dense_conv[0].bias, 1152 * 9)
    uniform_ok(m.dense_conv[3].weight, 576 * 9)
    assert torch.equal(m.dense_conv[1].weight, torch.ones(576))
    assert torch.equal(m.dense_conv[1].bias, torch.zeros(576))
    assert torch.equal(lay.norm.weight, torch.ones(256))
    # positional / prompt embeddings: N(0, 1)
    for p in (m.query_pos_embed1, m.image_pos_embed, m.prompt_embed,
              m.prompt_pos_embed):
        assert abs(p.std().item() - 1) < 0.1 and abs(p.mean().item()) < 0.1
    assert m.image_pos_embed.shape == (1, 1152, 32, 32)

    f = dict(
        visual_feats=torch.randn(1, 1152, 32, 32),
        text_feats=torch.randn(1, 7, 1152),
        text_mask=torch.ones(1, 7, dtype=torch.bool),
        text_embeds=torch.randn(1, 1152),
        logit_scale=torch.tensor(10.),
        logit_bias=torch.tensor(-10.))
    with torch.no_grad():
        out = m(f)
    assert out['sparse_embeddings'].shape == (1, 9, 256)
    assert out['mask_prompt'].shape == (1, 1, 256, 256)
    assert out['dense_similarity'].shape == (1, 1, 256, 256)
    assert out['query_mean_1'].shape == out['query_mean_2'].shape == (1, 1152)


def test_options():
    with pytest.raises(ValueError, match='text_padding'):
        CascadedPrompter(**TINY, text_padding='longest')
    with pytest.raises(ValueError, match='step1_depth'):
        CascadedPrompter(**TINY, step1_depth=0)
    sync = CascadedPrompter(**TINY, norm_cfg=dict(type='SyncBN'))
    assert isinstance(sync.dense_conv[1], nn.SyncBatchNorm)
    assert isinstance(CascadedPrompter(**TINY).dense_conv[1], nn.BatchNorm2d)
