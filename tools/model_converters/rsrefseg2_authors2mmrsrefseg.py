# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Convert RSRefSeg 2 weights of the authors' code into an mmrsrefseg
checkpoint.

Reads the authors' released checkpoints (Hugging Face ``KyanChen/RSRefSeg2``:
``rrsisd.pth``, ``refsegrs.pth``, ``risbench.pth``: a pickle of
``{'state_dict': ...}``, every float tensor bfloat16) or any checkpoint of
their code with that key layout, renames their module names to
``RSRefSeg2``'s (:mod:`mmrsrefseg.utils.authors_rsrefseg2_checkpoint`),
checks the result strictly against the model of ``--config`` (every key
present, none unexpected, every shape equal; the model is built without
reading any weight file) and saves an mmengine checkpoint (float32) that
``tools/test.py`` evaluates on our leaderboard protocol.

Example::

    python tools/model_converters/rsrefseg2_authors2mmrsrefseg.py \\
        checkpoints/RSRefSeg2/rrsisd.pth checkpoints/rsrefseg2_rrsisd.pth
    bash tools/dist_test.sh configs/rsrefseg2_rrsisd.py \\
        checkpoints/rsrefseg2_rrsisd.pth 8
"""
import argparse
import os
import os.path as osp

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope

from mmrsrefseg.utils.authors_rsrefseg2_checkpoint import \
    convert_authors_rsrefseg2
from mmrsrefseg.utils.checkpoint import (StateDictError, key_problems,
                                         read_checkpoint, state_dict_of)


def parse_args():
    parser = argparse.ArgumentParser(
        description="Convert an RSRefSeg 2 checkpoint of the authors' code "
        '(e.g. the released rrsisd.pth) into an mmrsrefseg checkpoint, '
        'checked strictly against the model of --config.')
    parser.add_argument('src', help="the authors' checkpoint (.pth)")
    parser.add_argument('dst', help='output mmrsrefseg checkpoint (.pth)')
    parser.add_argument(
        '--config',
        default='configs/rsrefseg2_rrsisd.py',
        help='mmrsrefseg config whose model the result must fit exactly '
        '(default: %(default)s; the architecture is the same for the three '
        'released files)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value')
    args = parser.parse_args()
    if osp.isdir(args.dst):
        parser.error(f'{args.dst} is a directory; give a file path')
    return args


def main():
    args = parse_args()
    checkpoint = read_checkpoint(args.src)
    state, dropped = convert_authors_rsrefseg2(
        state_dict_of(checkpoint, args.src))
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    import mmrsrefseg  # noqa: F401  (registers the modules)
    from mmrsrefseg.models.utils import model_key_shapes
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    # SAM 2.1's Hiera cannot be built on the meta device
    problems = key_problems(model_key_shapes(cfg.model, 'cpu'), state)
    if problems:
        raise StateDictError(
            f'{args.src} does not hold the RSRefSeg 2 model of '
            f'{args.config}: ' + '; '.join(problems))
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save(
        dict(
            meta=dict(
                converted_from=args.src,
                converter='rsrefseg2_authors2mmrsrefseg',
                config=args.config,
                dropped_keys=dropped),
            state_dict=state), args.dst)
    print(f'wrote {len(state)} tensors to {args.dst} (checked against '
          f'{args.config}; dropped {len(dropped)} keys without effect: '
          f'{", ".join(dropped)})')


if __name__ == '__main__':
    main()
