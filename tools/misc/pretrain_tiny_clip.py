# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Pretrain the embedded default's tiny CLIP/SigLIP for image-text alignment.

Both models presuppose a foundation model whose patch features and text
features are already aligned: RSRefSeg filters CLIP's visual features by
their cosine similarity to the referring expression (arXiv:2501.06809, Sec.
III-B); RSRefSeg 2's dense prompt is the cosine similarity of the refined
SigLIP map with the pooled text feature, and its queries read SigLIP's text
tokens (arXiv:2507.06231). Real users get that from CLIP's / SigLIP's
pretraining. A randomly initialised tiny CLIP has no alignment, and trained
end to end from scratch in the embedded default's budget (minutes on a CPU)
it collapses to a text-blind solution: its patch features become
near-identical (mean pairwise cosine 0.94), the global activation a
constant, and the predicted mask independent of the expression (measured;
see the README).

This script plays the role of the foundation model's pretraining, on the
synthetic data's *train* split only: SigLIP's pairwise sigmoid loss, applied
densely -- every patch is a positive for the expression of the object that
covers it (soft label: the covered fraction of the patch) and a negative
otherwise:

    loss = BCE(s * cos(V[:, :, y, x], g) + b, area_fraction[y, x])

with V the dense patch features, g the pooled expression feature, s and b
the model's logit scale and bias (CLIP has no bias: b = 0). The whole
backbone trains, so the text tokens that RSRefSeg 2's queries read are
shaped through the pooled feature.

The scale starts where the foundation model's own pretraining starts it:
CLIP's 1 / 0.07 (transformers' initialisation already) and SigLIP's 10
(``t' = log 10``, Zhai et al., "Sigmoid Loss for Language Image
Pre-Training", arXiv:2303.15343, Sec. 3.3; transformers initialises
SigLIP's at 1). From a scale of 1 the tiny SigLIP's text tower collapsed
within the 600 steps: every expression embedded at cosine >= 0.99, and the
alignment learnt marked every object whatever the expression (measured).
The bias keeps transformers' 0 rather than SigLIP's -10, which offsets its
one-positive-per-row imbalance; the dense loss here is class-balanced.

The weights are written back in place (``save_pretrained``), so the
segmentor loads them through the same code path as real checkpoints. The
validation and test splits are never seen.

Examples::

    python tools/misc/pretrain_tiny_clip.py \\
        configs/rsrefseg_tiny_synthetic.py data/synthetic_rrsisd
    python tools/misc/pretrain_tiny_clip.py \\
        configs/rsrefseg2_tiny_synthetic.py data/synthetic_rrsisd
"""
import argparse
import json
import math
import os.path as osp
import time

import torch
import torch.nn.functional as F
from mmengine.config import Config, DictAction
from mmengine.dataset import pseudo_collate
from mmseg.registry import DATASETS, MODELS
from mmseg.utils import register_all_modules
from tqdm import tqdm

from mmrsrefseg.models.necks import global_activation_logits

MARKER = 'mmrsrefseg_pretraining.json'
#: SigLIP's initial logit scale exp(t') (arXiv:2303.15343, Sec. 3.3).
SIGLIP_INIT_SCALE = 10.


def parse_args():
    parser = argparse.ArgumentParser(
        description='Pretrain the tiny CLIP/SigLIP of CONFIG '
        '(model.backbone.pretrained, written by make_tiny_checkpoints.py) '
        'with a dense sigmoid image-text loss on the train split of '
        'DATA_ROOT, and save it back in place.')
    parser.add_argument('config', help='config whose backbone to pretrain')
    parser.add_argument('data_root', help='RRSIS-D layout data root')
    parser.add_argument('--steps', type=int, default=600)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--lr', type=float, default=2e-3)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--force',
        action='store_true',
        help='pretrain again even if the checkpoint says it was pretrained')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value')
    return parser.parse_args()


def build_loader(cfg, data_root, image_size, batch_size, seed):
    """Train-split loader: images resized to the CLIP input, GT masks."""
    dataset_cfg = cfg.train_dataloader.dataset.copy()
    dataset_cfg.update(
        data_root=data_root,
        split='train',
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadRefSegAnnotations'),
            dict(
                type='Resize',
                scale=(image_size, image_size),
                keep_ratio=False),
            dict(type='PackSegInputs', meta_keys=cfg.meta_keys)
        ])
    dataset = DATASETS.build(dataset_cfg)
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        generator=generator,
        collate_fn=pseudo_collate,
        num_workers=0)


def dense_sigmoid_loss(backbone, batch):
    """The dense SigLIP loss of one batch (see the module docstring)."""
    images = torch.stack(batch['inputs']).float()[:, [2, 1, 0]]  # BGR->RGB
    texts = [s.metainfo['text'] for s in batch['data_samples']]
    masks = torch.stack([s.gt_sem_seg.data for s in batch['data_samples']])
    feats = backbone(images, texts)
    bias = feats['logit_bias'] if feats['logit_bias'] is not None else 0.
    logits = global_activation_logits(feats['visual_feats'],
                                      feats['text_embeds'],
                                      feats['logit_scale'], bias)
    target = F.adaptive_avg_pool2d((masks == 1).float(), logits.shape[-2:])
    target = target[:, 0]
    # Class-balanced: the referred object covers ~3 % of the patches, and a
    # plain mean is minimised by "background everywhere".
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction='none')
    pos = target.sum().clamp(min=1e-6)
    neg = (1 - target).sum().clamp(min=1e-6)
    return ((loss * target).sum() / pos + (loss *
                                           (1 - target)).sum() / neg) / 2


def main():
    args = parse_args()
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    path = cfg.model.backbone.pretrained
    marker = osp.join(path, MARKER)
    if osp.isfile(marker) and not args.force:
        print(f'{path} is already pretrained ({marker}); use --force')
        return
    torch.manual_seed(args.seed)
    backbone = MODELS.build(cfg.model.backbone)
    backbone.init_weights()
    if backbone.model_type == 'siglip':  # see the module docstring
        with torch.no_grad():
            backbone.model.logit_scale.fill_(math.log(SIGLIP_INIT_SCALE))
    initial_scale, _ = backbone.logit_scale_bias()
    backbone.train()
    loader = build_loader(cfg, args.data_root, backbone.image_size,
                          args.batch_size, args.seed)
    params = [p for p in backbone.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        optim, max_lr=args.lr, total_steps=args.steps, pct_start=0.1)
    start, losses, step = time.time(), [], 0
    bar = tqdm(
        total=args.steps, desc='dense image-text pretraining', mininterval=10)
    while step < args.steps:
        for batch in loader:
            loss = dense_sigmoid_loss(backbone, batch)
            optim.zero_grad()
            loss.backward()
            optim.step()
            sched.step()
            losses.append(loss.item())
            step += 1
            bar.update(1)
            bar.set_postfix(
                loss=f'{sum(losses[-20:]) / len(losses[-20:]):.4f}')
            if step == args.steps:
                break
    bar.close()
    backbone.model.save_pretrained(path)
    summary = dict(
        objective='dense sigmoid image-text loss (see '
        'tools/misc/pretrain_tiny_clip.py)',
        data_root=args.data_root,
        split='train',
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        initial_logit_scale=round(initial_scale.item(), 4),
        first_loss=sum(losses[:20]) / len(losses[:20]),
        last_loss=sum(losses[-20:]) / len(losses[-20:]),
        seconds=round(time.time() - start, 1))
    with open(marker, 'w', encoding='utf-8') as f:
        json.dump(summary, f, indent=2)
    print(f'pretrained {path}: loss {summary["first_loss"]:.4f} -> '
          f'{summary["last_loss"]:.4f} in {summary["seconds"]} s')


if __name__ == '__main__':
    main()
