# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Convert a checkpoint trained with the RSRefSeg authors' code.

Reads a DeepSpeed checkpoint of the authors' ``FlexibleRunner`` training
(``work_dirs/RSRefSeg-b/epoch_85.pth/`` holding
``mp_rank_00_model_states.pt``, or that file itself), the bare state dict
their ``deepspeed_ckpt_to_torch_ckpt.py`` writes, or an mmengine checkpoint,
renames HF / peft module names to mmrsrefseg's
(:mod:`mmrsrefseg.utils.authors_checkpoint`) and saves an mmengine
checkpoint that ``tools/test.py`` evaluates on our leaderboard protocol.
With ``--config`` the result is loaded strictly into that config's model
first (every key present, none unexpected, shapes equal).

Only convert checkpoints you trust: DeepSpeed files are full pickles.

Example::

    python tools/model_converters/rsrefseg_authors2mmrsrefseg.py \
        work_dirs/RSRefSeg-b/epoch_85.pth checkpoints/rsrefseg-b_authors.pth \
        --config configs/rsrefseg_vitb.py
    bash tools/dist_test.sh configs/rsrefseg_vitb.py \
        checkpoints/rsrefseg-b_authors.pth 8
"""
import argparse
import os
import os.path as osp

import torch
from mmengine.config import Config

from mmrsrefseg.utils.authors_checkpoint import (convert_authors_state_dict,
                                                 read_authors_state_dict)


def parse_args():
    parser = argparse.ArgumentParser(
        description='Convert a checkpoint of the RSRefSeg authors\' code '
        '(DeepSpeed mp_rank_00_model_states.pt, its directory, a bare state '
        'dict or an mmengine checkpoint) into an mmrsrefseg checkpoint.')
    parser.add_argument('src', help='authors\' checkpoint file or directory')
    parser.add_argument('dst', help='output mmrsrefseg checkpoint (.pth)')
    parser.add_argument(
        '--config',
        help='mmrsrefseg config to verify the result against (strict load)')
    return parser.parse_args()


def verify(cfg_path: str, state: dict) -> None:
    """Load ``state`` strictly into the model of ``cfg_path``.

    Raises:
        RuntimeError: On missing / unexpected keys or shape mismatches.
    """
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import mmrsrefseg  # noqa: F401
    cfg = Config.fromfile(cfg_path)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model_cfg = cfg.model
    # no weight files are read: the converted checkpoint holds everything
    model_cfg.backbone.pretrained = None
    model_cfg.decode_head.checkpoint = None
    model = MODELS.build(model_cfg)
    model.load_state_dict(state, strict=True)


def main():
    args = parse_args()
    state, info = convert_authors_state_dict(read_authors_state_dict(args.src))
    if args.config:
        verify(args.config, state)
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save(
        dict(
            meta=dict(
                converted_from=args.src,
                converter='rsrefseg_authors2mmrsrefseg',
                prompter_num_downsample=info['num_downsample']),
            state_dict=state), args.dst)
    print(f'wrote {len(state)} tensors to {args.dst}' +
          (f' (verified against {args.config})' if args.config else ''))


if __name__ == '__main__':
    main()
