# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""The paper's configs build without weights and train one step on CPU."""
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules

import mmrsrefseg  # noqa: F401

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def random_token_ids(backbone):
    """Stand-in tokenizer: the real one is in the (absent) weight dir."""
    vocab = backbone.model.config.text_config.vocab_size

    def tokenize(texts, device=None):
        n = backbone.max_length if backbone.model_type == 'siglip' else 7
        ids = torch.randint(0, vocab, (len(texts), n))
        mask = torch.zeros_like(ids)
        mask[:, :5] = 1
        return {'input_ids': ids, 'attention_mask': mask}

    backbone.tokenize = tokenize


@pytest.mark.parametrize('name,sam_depth', [('rsrefseg_vitb.py', 12),
                                            ('rsrefseg_vitl.py', 24),
                                            ('rsrefseg_clip_vitb16.py', 12)])
def test_config_builds_and_trains_one_step(name, sam_depth):
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(osp.join(REPO, 'configs', name))
    # ViT-L's backward at 1024 x 1024 needs > 24 GB without checkpointing
    cfg.model.decode_head.with_cp = sam_depth > 12
    assert cfg.custom_imports.imports == ['mmrsrefseg']
    assert cfg.model.decode_head.checkpoint.endswith('.pth')
    assert cfg.model.finetune_cfg.lora.rank == 16
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)  # no weights read, nothing downloaded
    assert len(model.decode_head.image_encoder.blocks) == sam_depth
    random_token_ids(model.backbone)
    trainable = [p for p in model.parameters() if p.requires_grad]
    inputs = torch.randint(0, 256, (1, 3, 1024, 1024)).float()
    sample = SegDataSample(
        metainfo=dict(
            text='the storage tank on the left',
            img_shape=(1024, 1024),
            pad_shape=(1024, 1024),
            ori_shape=(800, 800)))
    gt = torch.zeros(1, 1024, 1024, dtype=torch.long)
    gt[:, 300:500, 200:400] = 1
    sample.gt_sem_seg = PixelData(data=gt)
    losses = model(inputs, [sample], mode='loss')
    loss = sum(v for k, v in losses.items() if 'loss' in k)
    loss.backward()
    assert torch.isfinite(loss)
    lora = [
        p for n, p in model.named_parameters()
        if 'lora_B' in n and n.startswith('decode_head.image_encoder')
    ]
    assert lora and all(p.grad is not None for p in lora)
    assert all(p.grad is not None for p in trainable)


def test_get_params_vitb():
    """The paper's -b: ~0.97 B parameters in total, ~17 M trainable."""
    out = subprocess.run([
        sys.executable, 'tools/analysis_tools/get_params.py',
        'configs/rsrefseg_vitb.py'
    ],
                         cwd=REPO,
                         stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT,
                         text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout[-3000:]
    total_line = [
        line for line in out.stdout.splitlines() if line.startswith('total')
    ][0]
    total, trainable = (
        int(x.replace(',', '')) for x in total_line.split()[1:])
    # SigLIP so400m 878.2 M + SAM ViT-B 93.7 M + prompter 2.1 M + LoRA
    # (authors' targets, rank 16) 10.48 M
    assert total == 984_280_674, total_line
    # LoRA 10.45 M (the pooling-head adapter is frozen) + prompter 2.13 M
    # + prompt encoder 4,684 + mask decoder 3.93 M (IoU head frozen)
    assert trainable == 16_478_252, total_line
    authors = [
        line for line in out.stdout.splitlines()
        if line.startswith("authors' trainable count")
    ][0]
    # = what the authors' composition counts (checked against it on tiny
    # shapes in test_authors_parity.py): + frozen, gradient-less parameters
    assert int(authors.split()[-1].replace(',', '')) == 16_649_264


@pytest.mark.parametrize('name', [
    'rsrefseg_siglip-so400m-sam-vitb_8xb1-amp-200e_rrsisd-1024x1024.py',
    'rsrefseg_siglip-so400m-sam-vitb_8xb1-deepspeed-fp16-200e_rrsisd-'
    '1024x1024.py',
    'rsrefseg_siglip-so400m-sam-vitl_8xb1-deepspeed-fp16-200e_rrsisd-'
    '1024x1024.py',
    'rsrefseg_siglip-so400m-sam-vith_8xb1-amp-200e_rrsisd-1024x1024.py',
])
def test_recipe_is_the_authors(name):
    """configs_RSRefSeg/RSRefSeg-b.py: batch 1, AdamW 1e-4 / 0.05, ..."""
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'rsrefseg', name))
    assert cfg.train_dataloader.batch_size == 1
    optim = cfg.optim_wrapper.optimizer
    assert (optim.type, optim.lr, optim.weight_decay) == ('AdamW', 1e-4, 0.05)
    warmup, cosine = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor, warmup.end) == ('LinearLR', 0.01,
                                                              5)
    assert (cosine.type, cosine.T_max, cosine.begin, cosine.end,
            cosine.eta_min_ratio) == ('CosineAnnealingLR', 200, 5, 200, 0.001)
    assert not cosine.get('convert_to_iter_based', False)  # per epoch
    assert cfg.train_cfg.max_epochs == 200 and cfg.train_cfg.val_interval == 5
    model = cfg.model
    lora = model.finetune_cfg.lora
    assert (lora.rank, lora.alpha, lora.dropout) == (16, 16, 0.1)
    # the authors' targets (configs_RSRefSeg/RSRefSeg-b.py): SAM blocks and
    # neck convs, SigLIP attention + the text head
    assert set(lora.targets) == {
        'decode_head.image_encoder', 'backbone.model.vision_model',
        'backbone.model.text_model'
    }
    assert 'neck' in lora.targets['decode_head.image_encoder']
    assert lora.targets['backbone.model.text_model'].endswith('|head')
    assert model.finetune_cfg.frozen == [
        'backbone', 'decode_head.image_encoder'
    ]
    assert model.neck.norm_cfg.type == 'SyncBN'
    assert model.decode_head.transformer_norm_eps == 1e-6
    assert (model.backbone.text_feature,
            model.backbone.clip_resize) == ('last_hidden_state', 'bilinear')
    hooks = {h.type: h for h in cfg.custom_hooks}
    # DeepSpeed writes whole model states itself
    assert hooks['RefSegCheckpointHook'].trained_only == ('deepspeed'
                                                          not in name)
    if 'deepspeed' in name:
        assert cfg.runner_type == 'FlexibleRunner'
        assert cfg.strategy.type == 'DeepSpeedStrategy'
        assert cfg.strategy.zero_optimization.stage == 2
        assert cfg.strategy.fp16.enabled and not cfg.strategy.fp16.auto_cast
        assert cfg.strategy.fp16.initial_scale_power == 15
        assert cfg.optim_wrapper.type == 'DeepSpeedOptimWrapper'
    else:
        assert 'runner_type' not in cfg
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
        assert cfg.optim_wrapper.dtype == 'bfloat16'
    expected_sam = {'vitb': 'vit_b', 'vitl': 'vit_l', 'vith': 'vit_h'}
    sam = name.split('sam-')[1][:4]
    assert model.decode_head.sam_type == expected_sam[sam]


def test_tiny_rsrefseg2_config_builds_and_trains_one_step(
        tmp_path, tiny_tools):
    """The quick start's RSRefSeg 2 loads its real-format tiny files and
    trains: SigLIP frozen + LoRA, prompter and SAM 2.1 trained fully."""
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'rsrefseg2_tiny_synthetic.py'))
    model_cfg = cfg.model
    assert model_cfg.backbone.pretrained == 'checkpoints/tiny/siglip2-tiny'
    assert model_cfg.decode_head.checkpoint.startswith('checkpoints/tiny/')
    assert model_cfg.neck.text_padding == 'per_sample'
    model_cfg.backbone.pretrained = str(tmp_path / 'siglip2')
    model_cfg.decode_head.checkpoint = str(tmp_path / 'sam2.1.pt')
    tiny_tools.save_siglip2_backbone(model_cfg.backbone.to_dict(), seed=0)
    tiny_tools.save_sam2(model_cfg.decode_head.sam2_cfg.to_dict(),
                         model_cfg.decode_head.checkpoint, 1)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()  # strict: the files are this architecture
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    backbone = {n for n in trainable if n.startswith('backbone.')}
    assert backbone and all(
        'lora_' in n or n.endswith('logit_scale') or n.endswith('logit_bias')
        for n in backbone)
    for prefix in ('neck.', 'decode_head.image_encoder.',
                   'decode_head.sam_mask_decoder.transformer.'):
        params = [
            n for n, _ in model.named_parameters() if n.startswith(prefix)
        ]
        assert params and set(params) <= trainable, prefix
    assert not any('iou_prediction_head' in n for n in trainable)
    texts = ['The largest yellow storage tank on the left', 'a red ship']
    samples = []
    for text in texts:
        sample = SegDataSample(
            metainfo=dict(
                text=text,
                img_shape=(256, 256),
                pad_shape=(256, 256),
                ori_shape=(256, 256)))
        gt = torch.zeros(1, 256, 256, dtype=torch.long)
        gt[:, 60:120, 100:180] = 1
        sample.gt_sem_seg = PixelData(data=gt)
        samples.append(sample)
    inputs = torch.randint(0, 256, (2, 3, 256, 256)).float()
    params = [p for p in model.parameters() if p.requires_grad]
    lora_b = [
        p for n, p in model.named_parameters()
        if 'lora_B' in n and p.requires_grad
    ]
    assert lora_b and all(p.abs().sum() == 0 for p in lora_b)  # peft init
    optim = torch.optim.AdamW(params, lr=1e-3)
    losses = model(inputs, samples, mode='loss')
    assert set(losses) == {
        'decode.loss_bce', 'decode.loss_dice', 'decode.acc_seg',
        'loss_query_decorrelation', 'loss_info_nce'
    }
    loss = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in params)
    optim.step()
    # every adapter of the frozen SigLIP received a gradient
    assert all(p.abs().sum() > 0 for p in lora_b)
    model.eval()
    with torch.no_grad():
        pred = model(inputs, samples, mode='predict')
    assert pred[0].pred_sem_seg.data.shape == (1, 256, 256)
