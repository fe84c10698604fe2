# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Whole-model parity with the authors' composition (transformers + peft).

The reference (:mod:`mmrsrefseg.testing.authors_rsrefseg`) rebuilds the
authors' forward from HF ``SamModel`` / ``SiglipModel``, peft and mmcv. Its
random weights (LoRA ``B`` included, so the adapters act) go through the
authors-checkpoint converter into mmrsrefseg's ``RSRefSeg``, loaded strictly;
the low-resolution mask logits must agree per sample.
"""
import copy

import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from mmrsrefseg.testing import (build_authors_from_config, randomise_weights,
                                tiny_siglip_rsrefseg_cfg)
from mmrsrefseg.utils.authors_checkpoint import convert_authors_state_dict
from mmrsrefseg.utils.lora import LoRADropout

TEXTS = [
    'the white storage tank on the left',
    'ship',
    'the large gray airplane at the bottom next to the road',
]


@pytest.fixture(scope='module')
def pair(siglip_tokenizer_dir):
    """(authors' composition, our RSRefSeg with the same weights), eval."""
    from transformers import AutoTokenizer
    init_default_scope('mmseg')
    tok = AutoTokenizer.from_pretrained(siglip_tokenizer_dir)
    cfg = tiny_siglip_rsrefseg_cfg(siglip_tokenizer_dir, len(tok))
    ref = build_authors_from_config(copy.deepcopy(cfg), tokenizer=tok)
    randomise_weights(ref)
    ref.eval()
    ours = MODELS.build(cfg)
    converted, info = convert_authors_state_dict(ref.state_dict())
    assert info['num_downsample'] == 2
    ours.load_state_dict(converted, strict=True)
    return ref, ours.eval(), cfg


def samples(texts, size=128):
    out = []
    for t in texts:
        s = SegDataSample(metainfo=dict(text=t, img_shape=(size, size)))
        s.gt_sem_seg = PixelData(data=torch.zeros(1, size, size).long())
        out.append(s)
    return out


@torch.no_grad()
def test_mask_logits_equal_authors_per_sample(pair):
    ref, ours, _ = pair
    torch.manual_seed(1)
    images = torch.rand(3, 3, 128, 128) * 255
    batched = ours._forward(images, samples(TEXTS))
    assert batched.shape == (3, 1, 32, 32)
    for i, text in enumerate(TEXTS):
        expected = ref(images[i:i + 1] / 255., [text])['masks']
        single = ours._forward(images[i:i + 1], samples([text]))
        # batch 1 and the mixed-length batch both give the authors' output
        torch.testing.assert_close(single, expected, atol=1e-4, rtol=0)
        torch.testing.assert_close(
            batched[i:i + 1], expected, atol=1e-4, rtol=0)
    assert expected.abs().max() > 0.1  # a real signal, not all zeros


@torch.no_grad()
def test_authors_batches_depend_on_padding(pair):
    """Why mmrsrefseg pools per sample: the authors' batch output differs."""
    ref, _, _ = pair
    images = torch.rand(2, 3, 128, 128)
    texts = [TEXTS[1], TEXTS[2]]  # 'ship' is padded in this batch
    batched = ref(images, texts)['masks']
    alone = ref(images[:1], texts[:1])['masks']
    assert (batched[:1] - alone).abs().max() > 1e-3
    torch.testing.assert_close(  # the longest expression is unpadded
        batched[1:],
        ref(images[1:], texts[1:])['masks'],
        atol=1e-4,
        rtol=0)


def test_trainable_count_equals_authors(pair):
    ref, ours, _ = pair
    theirs = sum(p.numel() for p in ref.parameters() if p.requires_grad)
    assert ours.authors_trainable_count() == theirs
    # ours counts only parameters that receive gradients
    ours_trainable = sum(p.numel() for p in ours.parameters()
                         if p.requires_grad)
    assert ours_trainable == theirs - sum(
        ours.unused_trainable_in_authors.values())
    assert ours_trainable < theirs


def test_training_mode_batch_norm_matches(pair):
    """Train mode (BN batch statistics, LoRA dropout off) agrees too."""
    ref, ours, cfg = pair
    ref2 = copy.deepcopy(ref).train()
    ours2 = copy.deepcopy(ours).train()
    for m in list(ref2.modules()) + list(ours2.modules()):
        if isinstance(m, (torch.nn.Dropout, LoRADropout)):
            m.p = 0.
    torch.manual_seed(2)
    images = torch.rand(2, 3, 128, 128) * 255
    texts = ['the red ship'] * 2  # one length: no padding (their bug)
    expected = ref2(images / 255., texts)['masks']
    got = ours2._forward(images, samples(texts))
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


@pytest.mark.realsize
@torch.no_grad()
def test_real_size_vitb_so400m(siglip_tokenizer_dir):
    """RSRefSeg-b at its real size (SAM ViT-B, SigLIP so400m, 1024x1024).

    About 10 GB of memory and a few minutes on 2 CPU cores: run with
    ``pytest -m realsize`` (not part of the default suite).
    """
    from mmengine.config import Config
    from transformers import AutoTokenizer
    init_default_scope('mmseg')
    tok = AutoTokenizer.from_pretrained(siglip_tokenizer_dir)
    cfg = Config.fromfile('configs/rsrefseg_vitb.py').model.to_dict()
    cfg['backbone'].update(pretrained=None, tokenizer=siglip_tokenizer_dir)
    cfg['decode_head']['checkpoint'] = None
    cfg['neck']['norm_cfg'] = dict(type='BN')
    ref = build_authors_from_config(copy.deepcopy(cfg), tokenizer=tok)
    randomise_weights(ref)
    ref.eval()
    ours = MODELS.build(cfg)
    ours.load_state_dict(
        convert_authors_state_dict(ref.state_dict())[0], strict=True)
    ours.eval()
    torch.manual_seed(1)
    images = torch.rand(2, 3, 1024, 1024) * 255
    texts = [TEXTS[1], TEXTS[2]]
    batched = ours._forward(images, samples(texts, 1024))
    assert batched.shape == (2, 1, 256, 256)
    for i, text in enumerate(texts):
        expected = ref(images[i:i + 1] / 255., [text])['masks']
        assert expected.abs().max() > 0.1
        torch.testing.assert_close(
            batched[i:i + 1], expected, atol=1e-4, rtol=0)
