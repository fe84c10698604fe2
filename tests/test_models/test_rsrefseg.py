# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""RSRefSeg segmentor: modes, batch consistency, LoRA, overfitting."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules

import mmrsrefseg  # noqa: F401

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TEXTS = [
    'the red vehicle on the left', 'the larger storage tank',
    'A airplane at the bottom'
]


@pytest.fixture(scope='module')
def tiny_cfg(clip_tokenizer_dir):
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/_base_/models/rsrefseg_tiny.py')).model
    cfg.backbone.pretrained = None
    cfg.backbone.tokenizer = clip_tokenizer_dir
    cfg.decode_head.checkpoint = None
    return cfg


def paper_lora(**kwargs):
    """The paper configs' LoRA (the authors' targets) with other sizes."""
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/_base_/models/'
                 'rsrefseg_siglip-so400m_sam-vitb.py')).model.finetune_cfg
    return dict(cfg.lora.to_dict(), **kwargs)


def make_batch(n=2, size=256, ori=(300, 280), seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randint(0, 256, (n, 3, size, size), generator=g).float()
    samples = []
    for i in range(n):
        s = SegDataSample(
            metainfo=dict(
                text=TEXTS[i % len(TEXTS)],
                img_shape=(size, size),
                pad_shape=(size, size),
                ori_shape=ori))
        gt = torch.zeros(1, size, size, dtype=torch.long)
        gt[:, 40 + 30 * i:120 + 30 * i, 60:160] = 1
        s.gt_sem_seg = PixelData(data=gt)
        samples.append(s)
    return inputs, samples


def build(cfg, seed=0):
    torch.manual_seed(seed)
    model = MODELS.build(copy.deepcopy(cfg))
    model.init_weights()
    return model


def test_modes(tiny_cfg):
    model = build(tiny_cfg)
    inputs, samples = make_batch()
    losses = model(inputs, samples, mode='loss')
    assert set(losses) == {
        'decode.loss_bce', 'decode.loss_dice', 'decode.acc_seg'
    }
    assert all(torch.isfinite(v) for v in losses.values())
    logits = model(inputs, samples, mode='tensor')
    assert logits.shape == (2, 1, 64, 64)  # 4 x (256 / 16)
    model.eval()
    with torch.no_grad():
        preds = model(inputs, copy.deepcopy(samples), mode='predict')
    assert preds[0].pred_sem_seg.data.shape == (1, 300, 280)
    assert set(preds[0].pred_sem_seg.data.unique().tolist()) <= {0., 1.}
    probs = preds[0].seg_logits.data
    assert probs.min() >= 0 and probs.max() <= 1
    torch.testing.assert_close(preds[0].pred_sem_seg.data, (probs
                                                            > 0.5).float())
    with pytest.raises(KeyError, match='text'):
        bad = [SegDataSample(metainfo=dict(img_shape=(256, 256)))] * 2
        model(inputs, bad, mode='tensor')


def test_train_and_val_step(tiny_cfg):
    model = build(tiny_cfg)
    optim = build_optim_wrapper(model,
                                dict(optimizer=dict(type='AdamW', lr=1e-3)))
    inputs, samples = make_batch()
    data = dict(inputs=list(inputs.to(torch.uint8)), data_samples=samples)
    log_vars = model.train_step(data, optim)
    assert 'loss' in log_vars and torch.isfinite(log_vars['loss'])
    outs = model.val_step(
        dict(
            inputs=list(inputs.to(torch.uint8)),
            data_samples=copy.deepcopy(samples)))
    assert len(outs) == 2 and outs[0].pred_sem_seg.data.shape == (1, 300, 280)


@pytest.mark.parametrize('dense,lora', [(True, False), (False, True)])
def test_every_trainable_parameter_gets_a_gradient(tiny_cfg, dense, lora):
    """DDP fails on trainable parameters outside the graph."""
    cfg = copy.deepcopy(tiny_cfg)
    cfg.neck.use_dense_prompt = dense
    if not dense:  # the mask prompt path is unused instead of no_mask_embed
        cfg.finetune_cfg.unused = [
            p for p in cfg.finetune_cfg.unused if 'no_mask_embed' not in p
        ] + ['decode_head.prompt_encoder.mask_downscaling']
    if lora:
        cfg.finetune_cfg.lora = paper_lora(rank=2, alpha=2, dropout=0.0)
        cfg.neck.logit_mode = 'backbone_scale'
    model = build(cfg)
    inputs, samples = make_batch()
    losses = model(inputs, samples, mode='loss')
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    unused = [
        n for n, p in model.named_parameters()
        if p.requires_grad and p.grad is None
    ]
    assert unused == []


@torch.no_grad()
def test_batch_equals_single(tiny_cfg):
    """Mixed-length expressions in a batch = each sample alone."""
    model = build(tiny_cfg).eval()
    inputs, samples = make_batch(n=3)
    batch = model(inputs, samples, mode='tensor')
    for i in range(3):
        single = model(inputs[i:i + 1], samples[i:i + 1], mode='tensor')
        torch.testing.assert_close(single, batch[i:i + 1], atol=1e-5, rtol=0)


def test_lora_trains_only_intended_parameters(tiny_cfg):
    cfg = copy.deepcopy(tiny_cfg)
    cfg.finetune_cfg.lora = paper_lora(rank=4, alpha=4, dropout=0.0)
    model = build(cfg)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    for name in trainable:
        assert ('lora_' in name or name.startswith('neck.')
                or name.startswith('decode_head.prompt_encoder.')
                or name.startswith('decode_head.mask_decoder.')), name
    lora = {n for n in trainable if 'lora_' in n}
    # the authors' targets: SAM 2 blocks x (qkv, proj, lin1, lin2) + the
    # neck convs 0 and 2; CLIP 2+2 layers x q/k/v/out (no SigLIP heads here)
    assert len(lora) == 2 * (2 * 4 + 2 + 2 * 4 + 2 * 4)
    assert {n
            for n in lora if '.neck.' in n} == {
                f'decode_head.image_encoder.neck.{i}.lora_{ab}.default.weight'
                for i in (0, 2)
                for ab in 'AB'
            }
    assert not any('patch_embed' in n for n in lora)
    attn = r'encoder\.layers\.\d+\.self_attn\.(q|k|v|out)_proj'
    blocks_only = copy.deepcopy(cfg)
    blocks_only.finetune_cfg.lora.targets = {
        'decode_head.image_encoder':
        r'blocks\.\d+\.(attn\.(qkv|proj)|mlp\.lin[12])',
        'backbone.model.vision_model': attn,
        'backbone.model.text_model': attn,
    }
    blocks_only = build(blocks_only)
    assert len([
        n for n, p in blocks_only.named_parameters()
        if p.requires_grad and 'lora_' in n
    ]) == 2 * (2 * 4 + 2 * 4 + 2 * 4)
    assert any(n.startswith('decode_head.mask_decoder.') for n in trainable)
    assert not any('iou_prediction_head' in n for n in trainable)
    frozen = [
        p for n, p in model.named_parameters()
        if n.startswith('backbone.') and 'lora_' not in n
    ]
    assert frozen and not any(p.requires_grad for p in frozen)

    inputs, samples = make_batch()
    optim = torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                            lr=0.1)
    for _ in range(2):  # lora_B starts at 0, so lora_A gets grads at step 2
        optim.zero_grad()
        loss = sum(v for k, v in model(inputs, samples, mode='loss').items()
                   if 'loss' in k)
        loss.backward()
        optim.step()
    for name, p in model.named_parameters():
        if 'lora_' in name:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        elif not p.requires_grad:
            assert p.grad is None, name


def test_overfits_one_batch(tiny_cfg):
    model = build(tiny_cfg, seed=1)
    inputs, samples = make_batch(n=2, seed=3)
    optim = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=2e-3)
    losses = []
    for _ in range(50):
        optim.zero_grad()
        loss = sum(v for k, v in model(inputs, samples, mode='loss').items()
                   if 'loss' in k)
        loss.backward()
        optim.step()
        losses.append(loss.item())
    assert losses[-1] <= 0.1 * losses[0], losses


def test_finetune_cfg_errors(tiny_cfg):
    cfg = copy.deepcopy(tiny_cfg)
    cfg.finetune_cfg.unused = ['decode_head.prompt_encoder.nope']
    with pytest.raises(KeyError, match='unused.*prompt_encoder.nope'):
        build(cfg)
    cfg = copy.deepcopy(tiny_cfg)
    cfg.finetune_cfg.lora.targets = {'backbone.model.text_model': r'nope'}
    with pytest.raises(ValueError, match='match no module'):
        build(cfg)
    cfg = copy.deepcopy(tiny_cfg)
    cfg.finetune_cfg.lora.ranks = 4
    with pytest.raises(KeyError, match='ranks'):
        build(cfg)
