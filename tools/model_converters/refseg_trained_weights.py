# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Merge a trained-only checkpoint with its base weights, or the reverse.

``RefSegCheckpointHook`` (on by default) saves checkpoints that keep only
what training changed; the frozen pretrained weights come from the files the
config names (``model.backbone.pretrained``, ``model.decode_head.checkpoint``)
whenever the checkpoint is loaded. ``merge`` writes a full, self-contained
checkpoint (e.g. to publish, or to load where the base files are absent);
``extract`` writes what the hook would have saved from a full one. Both are
checked strictly against the config's model: every key present, none
unexpected, every shape equal, and ``extract`` also checks that the frozen
tensors it leaves out are those of the base files (else merging the result
would give another model). Everything but the state dict (``meta``,
``optimizer``, ``message_hub``, ...) is kept, so that
``extract(merge(x)) == x``.

Examples::

    python tools/model_converters/refseg_trained_weights.py merge \\
        configs/rsrefseg_vitb.py work_dirs/rsrefseg_vitb/epoch_200.pth \\
        checkpoints/rsrefseg-b_full.pth
    python tools/model_converters/refseg_trained_weights.py extract \\
        configs/rsrefseg_vitb.py checkpoints/rsrefseg-b_full.pth \\
        checkpoints/rsrefseg-b_trained.pth \\
        --cfg-options model.decode_head.checkpoint=checkpoints/sam_b.pth
"""
import argparse
import os
import os.path as osp

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from mmrsrefseg.models.utils import (TRAINED_ONLY_KEY, frozen_pretrained_keys,
                                     is_trained_only, make_trained_only,
                                     model_state_from_checkpoint)
from mmrsrefseg.utils.checkpoint import (StateDictError, format_keys,
                                         read_checkpoint)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Merge a trained-only RSRefSeg checkpoint with the '
        "pretrained base weights its config names (merge), or reduce a full "
        'checkpoint to what training changed (extract); both verified '
        'strictly against the model of CONFIG.')
    sub = parser.add_subparsers(dest='command', required=True)
    for name, help_text, src, dst in [
        ('merge', 'trained-only checkpoint + base weights -> full '
         'checkpoint', 'trained-only checkpoint (.pth)',
         'output: full checkpoint (.pth)'),
        ('extract', 'full checkpoint -> trained-only checkpoint (the frozen '
         "pretrained tensors must equal the config's base files)",
         'full checkpoint (.pth)', 'output: trained-only checkpoint (.pth)')
    ]:
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.add_argument(
            'config',
            help='config of the model (its model.backbone.pretrained and '
            'model.decode_head.checkpoint name the base weights)')
        cmd.add_argument('src', help=src)
        cmd.add_argument('dst', help=dst)
        cmd.add_argument(
            '--cfg-options',
            nargs='+',
            action=DictAction,
            help='override config settings, e.g. '
            'model.decode_head.checkpoint=checkpoints/sam_vit_b_01ec64.pth')
    args = parser.parse_args(argv)
    if osp.isdir(args.dst):
        parser.error(f'{args.dst} is a directory; give a file path')
    return args


def build_model(config: str, cfg_options: dict = None):
    """The model of ``config`` (random weights; the base is read on use)."""
    import mmrsrefseg  # noqa: F401  (registers the modules)
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    return MODELS.build(cfg.model)


def merge(model, src: str) -> dict:
    """A full checkpoint from the trained-only checkpoint ``src``.

    Raises:
        ValueError: If ``src`` is not a trained-only checkpoint.
        StateDictError: If the checkpoint and the base do not give every
            key of ``model`` with its shape (named).
    """
    ckpt = read_checkpoint(src)
    if not is_trained_only(ckpt):
        raise ValueError(f'{src} is not a trained-only checkpoint (no '
                         f'meta["{TRAINED_ONLY_KEY}"]): it holds every '
                         'weight already')
    state = model_state_from_checkpoint(model, ckpt, src)
    ckpt['state_dict'] = {k: state[k] for k in model.state_dict()}
    ckpt['meta'].pop(TRAINED_ONLY_KEY)
    return ckpt


def extract(model, src: str) -> dict:
    """The trained-only checkpoint of the full checkpoint ``src``.

    Raises:
        ValueError: If ``src`` is trained-only already.
        StateDictError: If ``src`` does not fit ``model``, or a frozen
            pretrained tensor of ``src`` differs from the base files'
            (named).
    """
    ckpt = read_checkpoint(src)
    if is_trained_only(ckpt):
        raise ValueError(f'{src} is a trained-only checkpoint already')
    state = model_state_from_checkpoint(model, ckpt, src)
    base = model.pretrained_state_dict()
    differ = sorted(
        k for k in frozen_pretrained_keys(model)
        if not torch.equal(state[k], base[k]))
    if differ:
        sources = ', '.join(
            f'{name}: {module.pretrained_source}'
            for name, module in model.pretrained_components().items())
        raise StateDictError(
            f'{src}: frozen pretrained tensors differ from the base weights '
            f'of the config [{sources}], so the trained-only checkpoint '
            f'would not give this model back: {format_keys(differ)}')
    if 'state_dict' not in ckpt:  # a bare state dict
        ckpt = dict(meta=dict())
    ckpt['state_dict'] = state
    return make_trained_only(model, ckpt)


def main(argv=None):
    args = parse_args(argv)
    model = build_model(args.config, args.cfg_options)
    ckpt = (merge if args.command == 'merge' else extract)(model, args.src)
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save(ckpt, args.dst)
    what = 'full' if args.command == 'merge' else 'trained-only'
    print(f'wrote a {what} checkpoint of {len(ckpt["state_dict"])} tensors '
          f'to {args.dst} (verified against {args.config})')
    return ckpt


if __name__ == '__main__':
    main()
