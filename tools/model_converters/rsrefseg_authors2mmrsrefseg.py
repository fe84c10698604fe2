# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Convert a checkpoint trained with the RSRefSeg authors' code.

Reads a DeepSpeed checkpoint of the authors' ``FlexibleRunner`` training
(``work_dirs/RSRefSeg-b/epoch_85.pth/`` holding
``mp_rank_00_model_states.pt``, or that file itself), the bare state dict
their ``deepspeed_ckpt_to_torch_ckpt.py`` writes, or an mmengine checkpoint,
renames HF / peft module names to mmrsrefseg's
(:mod:`mmrsrefseg.utils.authors_checkpoint`) and saves an mmengine
checkpoint that ``tools/test.py`` evaluates on our leaderboard protocol.

The result is verified against the architecture it targets before anything
is written: every tensor of the RSRefSeg model present, none unexpected,
every shape equal (else an error names the keys). The model is that of
``--config``, or without it the paper config the checkpoint's shapes
identify: SigLIP so400m with SAM ViT-B, ViT-L or ViT-H (from the width of
SAM's image encoder) -> ``configs/rsrefseg_vit{b,l,h}.py``. The model is
built on the ``meta`` device (shapes only, no weights allocated).

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
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmrsrefseg.utils.authors_checkpoint import (convert_authors_state_dict,
                                                 read_authors_state_dict)
from mmrsrefseg.utils.checkpoint import StateDictError, key_problems

CONFIG_DIR = osp.join(
    osp.dirname(osp.abspath(__file__)), '..', '..', 'configs')
#: Width of SAM's image encoder -> the paper config of that SAM (all with
#: SigLIP so400m-patch14-384).
PAPER_CONFIGS = {
    768: 'rsrefseg_vitb.py',
    1024: 'rsrefseg_vitl.py',
    1280: 'rsrefseg_vith.py'
}
SAM_PATCH_EMBED = 'decode_head.image_encoder.patch_embed.proj.weight'


def parse_args():
    parser = argparse.ArgumentParser(
        description='Convert a checkpoint of the RSRefSeg authors\' code '
        '(DeepSpeed mp_rank_00_model_states.pt, its directory, a bare state '
        'dict or an mmengine checkpoint) into an mmrsrefseg checkpoint, '
        'verified to hold every tensor of the target RSRefSeg model with '
        'its shape.')
    parser.add_argument('src', help='authors\' checkpoint file or directory')
    parser.add_argument('dst', help='output mmrsrefseg checkpoint (.pth)')
    parser.add_argument(
        '--config',
        help='mmrsrefseg config of the architecture to verify against '
        '(default: the paper config of the SAM size found in the '
        'checkpoint, configs/rsrefseg_vit{b,l,h}.py)')
    args = parser.parse_args()
    if osp.isdir(args.dst):
        parser.error(f'dst {args.dst} is a directory; give a file path')
    return args


def infer_config(state: dict, src: str) -> str:
    """The paper config whose SAM has the image-encoder width of ``state``.

    Raises:
        StateDictError: If ``state`` has no SAM image encoder or one of a
            width no paper config uses (pass ``--config`` then).
    """
    known = ', '.join(f'{w}: configs/{name}'
                      for w, name in PAPER_CONFIGS.items())
    if SAM_PATCH_EMBED not in state:
        raise StateDictError(
            f'{src} has no SAM image encoder (no '
            'backbone.base_model.model.model.patch_embed.projection.weight, '
            f'{SAM_PATCH_EMBED} once converted), so its architecture cannot '
            'be inferred; pass --config')
    width = int(state[SAM_PATCH_EMBED].shape[0])
    if width not in PAPER_CONFIGS:
        raise StateDictError(
            f'{src}: SAM image-encoder width {width} matches no paper config '
            f'({known}); pass --config with the architecture it was trained '
            'with')
    return osp.normpath(osp.join(CONFIG_DIR, PAPER_CONFIGS[width]))


def verify(cfg_path: str,
           state: dict,
           src: str,
           inferred: bool = False) -> None:
    """Check that ``state`` holds every tensor of the model of ``cfg_path``
    with its shape, and nothing else.

    The model is built on the ``meta`` device without its pretrained files:
    only its key names and shapes are used.

    Raises:
        StateDictError: On missing, unexpected or mis-shaped keys (the
            first keys of each kind and their count).
    """
    from mmrsrefseg.models.utils import model_key_shapes
    cfg = Config.fromfile(cfg_path)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    problems = key_problems(model_key_shapes(cfg.model, 'meta'), state)
    if problems:
        how = (' (inferred from its SAM image-encoder width; pass --config '
               'for another architecture)' if inferred else '')
        raise StateDictError(f'{src} does not hold the RSRefSeg model of '
                             f'{cfg_path}{how}: ' + '; '.join(problems))


def convert(src: str, dst: str, config: Optional[str] = None) -> dict:
    """Convert, verify and save; return the saved checkpoint.

    Raises:
        FileNotFoundError, ValueError: On an unreadable ``src``.
        KeyError: On keys no rule maps (named).
        StateDictError: If the result does not fit the target model.
    """
    authors = read_authors_state_dict(src)
    if not authors:
        raise ValueError(f'{src} holds no tensors')
    state, info = convert_authors_state_dict(authors)
    inferred = config is None
    config = config or infer_config(state, src)
    verify(config, state, src, inferred)
    ckpt = dict(
        meta=dict(
            converted_from=src,
            converter='rsrefseg_authors2mmrsrefseg',
            verified_against=config,
            prompter_num_downsample=info['num_downsample']),
        state_dict=state)
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save(ckpt, dst)
    return ckpt


def main():
    args = parse_args()
    ckpt = convert(args.src, args.dst, args.config)
    print(f'wrote {len(ckpt["state_dict"])} tensors to {args.dst} (verified '
          f'against {ckpt["meta"]["verified_against"]})')


if __name__ == '__main__':
    main()
