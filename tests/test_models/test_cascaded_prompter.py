# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""CascadedPrompter against a literal op-list reading of the authors' code.

The reference below rebuilds the authors' prompter (KyanChen/RSRefSeg2,
``refseg/models/models.py``, configured as ``configs_RSRefSeg2/
rrsisd_training.py``) with their module names and their op-list
interpreter: each op name selects q/k/v, attention and MLP outputs are added
to the stream they update, norms replace it. Our weights reach it through
the docstring's authors' -> ours table (inverted here), loaded strictly.
"""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmrsrefseg.models import CascadedPrompter
from mmrsrefseg.models.necks.cascaded_prompter import masked_adaptive_avg_pool

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

# The authors' op lists (rrsisd_training.py).
TWO_QUERY_OPS = [
    'self_attn_query_query1', 'norm_query1_1', 'self_attn_query_query2',
    'norm_query2_1', 'cross_attn_query_text_query1_text', 'norm_query1_2',
    'mlp_query1_2', 'norm_query1_3', 'cross_attn_query_text_query2_text',
    'norm_query2_2', 'mlp_query2_2', 'norm_query2_3',
    'cross_attn_query_query_query1_query2', 'norm_query1_4', 'mlp_query1_3',
    'norm_query1_5', 'cross_attn_query_query_query2_query1', 'norm_query2_4',
    'mlp_query2_3', 'norm_query2_5'
]
STEP1_OPS = [
    'self_attn_text_text_1', 'norm_text_1', 'cross_attn_img_text_1',
    'norm_img_1', 'mlp_img_1', 'norm_img_2'
]
STEP2_OPS = [
    'self_attn_text_1', 'norm_text_1', 'cross_attn_img_text_1', 'norm_img_1',
    'mlp_img_1', 'norm_img_2', 'self_attn_prompt_1', 'norm_prompt_1',
    'cross_attn_prompt_text_1', 'norm_prompt_2', 'mlp_prompt_2',
    'norm_prompt_3', 'cross_attn_prompt_img_1', 'norm_prompt_4',
    'mlp_prompt_3', 'norm_prompt_5'
]

# ours -> (authors' attention, norm, mlp, norm after the mlp); the docstring
# table of CascadedPrompter.
LAYER_MAP = {
    'two_query_layers': ('two_queries_text_attn_layers', {
        'q1_self_attn': ('self_attn_query_query1', 'norm_query1_1'),
        'q2_self_attn': ('self_attn_query_query2', 'norm_query2_1'),
        'q1_text_attn': ('cross_attn_query_text_query1_text', 'norm_query1_2',
                         'mlp_query1_2', 'norm_query1_3'),
        'q2_text_attn': ('cross_attn_query_text_query2_text', 'norm_query2_2',
                         'mlp_query2_2', 'norm_query2_3'),
        'q1_q2_attn': ('cross_attn_query_query_query1_query2', 'norm_query1_4',
                       'mlp_query1_3', 'norm_query1_5'),
        'q2_q1_attn': ('cross_attn_query_query_query2_query1', 'norm_query2_4',
                       'mlp_query2_3', 'norm_query2_5'),
    }),
    'step1_layers': ('queries1_to_img_attn_layers', {
        'query_self_attn': ('self_attn_text_text_1', 'norm_text_1'),
        'image_query_attn':
        ('cross_attn_img_text_1', 'norm_img_1', 'mlp_img_1', 'norm_img_2'),
    }),
    'step2_layers': ('prompt_queries2_img_attn_layers', {
        'query_self_attn': ('self_attn_text_1', 'norm_text_1'),
        'image_query_attn':
        ('cross_attn_img_text_1', 'norm_img_1', 'mlp_img_1', 'norm_img_2'),
        'prompt_self_attn': ('self_attn_prompt_1', 'norm_prompt_1'),
        'prompt_query_attn': ('cross_attn_prompt_text_1', 'norm_prompt_2',
                              'mlp_prompt_2', 'norm_prompt_3'),
        'prompt_image_attn': ('cross_attn_prompt_img_1', 'norm_prompt_4',
                              'mlp_prompt_3', 'norm_prompt_5'),
    }),
}
TOP_MAP = {
    'query_pos_embed1': 'text_query_pe_embedding1',
    'query_pos_embed2': 'text_query_pe_embedding2',
    'image_pos_embed': 'img_pe',
    'prompt_embed': 'prompt_embedding',
    'prompt_pos_embed': 'prompt_pe_embedding',
    'sparse_mlp.layers.0.0': 'sparse_prompt_mlp.layers.0',
    'sparse_mlp.layers.1': 'sparse_prompt_mlp.layers.1',
    'dense_conv': 'dense_prompt_conv',
}


def ours_to_authors(key):
    """Our parameter name -> the authors' (inverse of the docstring table)."""
    head, _, rest = key.partition('.')
    if head in LAYER_MAP:
        block, layers = LAYER_MAP[head]
        idx, name, sub = rest.split('.', 2)
        names = layers[name]  # attention, norm[, mlp, norm after the mlp]
        for ours, i, theirs in (('ffn.layers.0.0.', 2, 'layers.0.'),
                                ('ffn.layers.1.', 2, 'layers.1.'),
                                ('ffn_norm.', 3, ''), ('norm.', 1, ''), ('', 0,
                                                                         '')):
            if sub.startswith(ours):
                return f'{block}.{idx}.{names[i]}.{theirs}{sub[len(ours):]}'
    for ours, theirs in TOP_MAP.items():
        if key == ours or key.startswith(ours + '.'):
            return theirs + key[len(ours):]
    raise KeyError(key)


class AuthorsAttention(nn.Module):
    """q/k/v/out projections around SDPA, no mask (the authors')."""

    def __init__(self, dim, kv_dim=None):
        super().__init__()
        kv_dim = kv_dim or dim
        self.q_proj = nn.Linear(dim, ATTN)
        self.k_proj = nn.Linear(kv_dim, ATTN)
        self.v_proj = nn.Linear(kv_dim, ATTN)
        self.out_proj = nn.Linear(ATTN, dim)

    def forward(self, q, k, v):
        heads = [
            x.reshape(*x.shape[:2], HEADS, -1).transpose(1, 2)
            for x in (self.q_proj(q), self.k_proj(k), self.v_proj(v))
        ]
        out = F.scaled_dot_product_attention(*heads)
        return self.out_proj(out.transpose(1, 2).flatten(2))


class AuthorsMLP(nn.Module):

    def __init__(self, dim):
        super().__init__()
        self.layers = nn.ModuleList(
            [nn.Linear(dim, FFN_DIM),
             nn.Linear(FFN_DIM, dim)])

    def forward(self, x):
        return self.layers[1](F.gelu(self.layers[0](x)))


# op name -> (stream it updates, stream it attends to); mlp_* / norm_* ops
# update the stream named in the op.
TWO_QUERY_ATTN = {
    'self_attn_query_query1': ('q1', 'q1'),
    'self_attn_query_query2': ('q2', 'q2'),
    'cross_attn_query_text_query1_text': ('q1', 'text'),
    'cross_attn_query_text_query2_text': ('q2', 'text'),
    'cross_attn_query_query_query1_query2': ('q1', 'q2'),
    'cross_attn_query_query_query2_query1': ('q2', 'q1'),
}
STEP1_ATTN = {
    'self_attn_text_text_1': ('text', 'text'),
    'cross_attn_img_text_1': ('img', 'text'),
}
STEP2_ATTN = {
    'self_attn_text_1': ('text', 'text'),
    'cross_attn_img_text_1': ('img', 'text'),
    'self_attn_prompt_1': ('prompt', 'prompt'),
    'cross_attn_prompt_text_1': ('prompt', 'text'),
    'cross_attn_prompt_img_1': ('prompt', 'img'),
}
WIDTH = dict(q1=C, q2=C, text=C, img=C, prompt=P)


def stream(op):
    for tag, name in (('query1', 'q1'), ('query2', 'q2'), ('_img', 'img'),
                      ('_text', 'text'), ('_prompt', 'prompt')):
        if tag in op:
            return name
    raise KeyError(op)


def authors_block(ops, attn):
    """ModuleDict named by op; type and widths by the authors' rules."""
    mods = {}
    for op in ops:
        if op in attn:
            dst, src = attn[op]
            mods[op] = AuthorsAttention(WIDTH[dst], WIDTH[src])
        elif op.startswith('norm'):
            mods[op] = nn.LayerNorm(WIDTH[stream(op)])
        else:
            mods[op] = AuthorsMLP(WIDTH[stream(op)])
    return nn.ModuleDict(mods)


def run_ops(block, ops, attn, s, pe):
    """The authors' block forward: attention/MLP outputs are added to the
    stream they update (q = x + pe, k = y + pe_y, v = y), norms replace it."""
    for op in ops:
        m = block[op]
        if op in attn:
            dst, src = attn[op]
            s[dst] = s[dst] + m(s[dst] + pe[dst], s[src] + pe[src], s[src])
        else:
            dst = stream(op)
            s[dst] = m(s[dst]) if op.startswith('norm') else s[dst] + m(s[dst])
    return s


class AuthorsPrompter(nn.Module):
    """The authors' module tree (names as in their checkpoints)."""

    def __init__(self, grid):
        super().__init__()
        self.text_query_pe_embedding1 = nn.Parameter(torch.zeros(NQ, C))
        self.text_query_pe_embedding2 = nn.Parameter(torch.zeros(NQ, C))
        self.two_queries_text_attn_layers = nn.ModuleList(
            authors_block(TWO_QUERY_OPS, TWO_QUERY_ATTN) for _ in range(2))
        self.img_pe = nn.Parameter(torch.zeros(1, C, grid, grid))
        self.queries1_to_img_attn_layers = nn.ModuleList(
            authors_block(STEP1_OPS, STEP1_ATTN) for _ in range(2))
        self.prompt_queries2_img_attn_layers = nn.ModuleList(
            authors_block(STEP2_OPS, STEP2_ATTN) for _ in range(2))
        self.prompt_pe_embedding = nn.Parameter(torch.zeros(NP, P))
        self.prompt_embedding = nn.Parameter(torch.zeros(NP, P))
        self.sparse_prompt_mlp = AuthorsMLP(P)
        self.dense_prompt_conv = nn.Sequential(
            nn.Conv2d(C, C // 2, 3, padding=1), nn.BatchNorm2d(C // 2),
            nn.GELU(), nn.Conv2d(C // 2, C, 3, padding=1))


def authors_forward(m, f):
    v0, text = f['visual_feats'], f['text_feats']
    b, c, h, w = v0.shape
    q1 = q2 = F.adaptive_avg_pool1d(text.permute(0, 2, 1), NQ).permute(0, 2, 1)
    pe1 = m.text_query_pe_embedding1.expand(b, -1, -1)
    pe2 = m.text_query_pe_embedding2.expand(b, -1, -1)
    s = dict(q1=q1, q2=q2, text=text)
    pe = dict(q1=pe1, q2=pe2, text=0)
    for blk in m.two_queries_text_attn_layers:
        s = run_ops(blk, TWO_QUERY_OPS, TWO_QUERY_ATTN, s, pe)
    q1, q2 = s['q1'], s['q2']
    img_pe = m.img_pe
    if img_pe.size(2) != h:
        img_pe = F.interpolate(
            img_pe, size=(h, h), mode='bicubic', align_corners=True)
    img_pe = img_pe.flatten(2).transpose(1, 2)
    s = dict(img=v0.flatten(2).transpose(1, 2), text=q1)
    pe = dict(img=img_pe, text=pe1)
    for blk in m.queries1_to_img_attn_layers:
        s = run_ops(blk, STEP1_OPS, STEP1_ATTN, s, pe)
    s = dict(
        img=s['img'], text=q2, prompt=m.prompt_embedding.expand(b, -1, -1))
    pe = dict(img=img_pe, text=pe2, prompt=m.prompt_pe_embedding)
    for blk in m.prompt_queries2_img_attn_layers:
        s = run_ops(blk, STEP2_OPS, STEP2_ATTN, s, pe)
    sparse = m.sparse_prompt_mlp(s['prompt'])
    vmap = s['img'].transpose(1, 2).reshape(b, c, h, w)
    vmap = F.interpolate(
        m.dense_prompt_conv(vmap),
        size=TINY['mask_prompt_size'],
        mode='bilinear',
        align_corners=True)
    vmap = vmap / vmap.norm(p=2, dim=1, keepdim=True)
    t = f['text_embeds'] / f['text_embeds'].norm(p=2, dim=1, keepdim=True)
    dense = torch.einsum('bchw,bc->bhw', vmap, t)[:, None]
    return dict(
        sparse_embeddings=sparse,
        mask_prompt=dense * f['logit_scale'] + f['logit_bias'],
        query_mean_1=q1.mean(1),
        query_mean_2=q2.mean(1))


def perturbed(model):
    """Random weights everywhere (norms, biases and BN statistics too), at
    a scale that keeps the attention softmaxes away from saturation."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith('running_var') or 'norm' in name or (
                    'dense_conv.1.' in name and name.endswith('weight')):
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
    ours = perturbed(CascadedPrompter(**dict(TINY, **kwargs)))
    theirs = AuthorsPrompter(grid=4)
    state = {ours_to_authors(k): v for k, v in ours.state_dict().items()}
    theirs.load_state_dict(state, strict=True)
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
