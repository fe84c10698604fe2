# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Train a referring segmentor (mmseg's tools/train.py + CPU distributed).

Modified from mmsegmentation's ``tools/train.py`` (Apache-2.0).
"""
import argparse
import logging
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.runner import Runner, find_latest_checkpoint

from mmrsrefseg.engine.hooks import add_checkpoint_hook
from mmrsrefseg.utils.checkpoint import read_checkpoint
from mmrsrefseg.utils.dist import setup_distributed


def parse_args():
    parser = argparse.ArgumentParser(
        description='Train an RSRefSeg model (mmseg-style runner).')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--work-dir',
        help='the dir to save logs and models (default: '
        'work_dirs/<config name>)')
    parser.add_argument(
        '--resume',
        action='store_true',
        default=False,
        help='resume from the latest checkpoint in the work_dir '
        'automatically')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or '
        'key=a,b. It also allows nested list/tuple values, e.g. '
        'key="[(a,b),(c,d)]". Note that the quotation marks are necessary '
        'and that no white space is allowed.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or
    # --local_rank (older); torchrun sets LOCAL_RANK.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def check_checkpoint_file(cfg) -> None:
    """Fail on an unreadable ``load_from`` / ``--resume`` file at once.

    mmengine reads it only after building everything and reports, e.g., a
    text file as ``KeyError: 101`` without naming it. DeepSpeed checkpoints
    (directories) and URLs are left to the runner.

    Raises:
        ValueError: If the file is empty or not a torch checkpoint (named).
    """
    path = cfg.get('load_from')
    if path is None and cfg.resume:
        path = find_latest_checkpoint(cfg.work_dir)
    if path is not None and '://' not in str(path) and osp.isfile(path):
        read_checkpoint(str(path), mmap=True)


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    setup_distributed(cfg, args.launcher)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    if args.amp:
        optim_wrapper = cfg.optim_wrapper.type
        if optim_wrapper == 'AmpOptimWrapper':
            print_log(
                'AMP training is already enabled in your config.',
                logger='current',
                level=logging.WARNING)
        else:
            assert optim_wrapper == 'OptimWrapper', (
                '`--amp` is only supported when the optimizer wrapper type '
                f'is `OptimWrapper` but got {optim_wrapper}.')
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'

    cfg.resume = args.resume
    # load_from / --resume: checkpoints are completed (trained-only) and
    # loaded strictly, also with a config that does not name the hook.
    add_checkpoint_hook(cfg)
    check_checkpoint_file(cfg)

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else None
    if runner is None:
        from mmengine.registry import RUNNERS
        runner = RUNNERS.build(cfg)
    runner.train()


if __name__ == '__main__':
    main()
