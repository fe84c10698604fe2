# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Test a referring segmentor: oIoU, mIoU, Pr@0.5-0.9 (+ JSON, pictures).

Modified from mmsegmentation's ``tools/test.py`` (Apache-2.0).
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from mmrsrefseg.engine.hooks import add_checkpoint_hook
from mmrsrefseg.utils.checkpoint import read_checkpoint
from mmrsrefseg.utils.dist import setup_distributed


def parse_args():
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) an RSRefSeg checkpoint: prints '
        'oIoU, mIoU and Pr@0.5-0.9 of the test split.')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out',
        type=str,
        help='write the leaderboard JSON here: the summary (oIoU, mIoU, '
        'Pr@X, split, protocol, checkpoint, config), the per-category and '
        'per-object-size tables (unless the metric has breakdown=False) and '
        'one record per sample (ref_id, sent_id, image_id, expression, '
        'category, ground-truth area and size, I, U, IoU); compare several '
        'with tools/analysis_tools/compare_results.py')
    parser.add_argument(
        '--non-strict',
        action='store_true',
        help='load a checkpoint that does not fit the model (missing, '
        'unexpected or mis-shaped keys; the mismatch is logged and the '
        'missing weights keep their initial values) instead of stopping. '
        'For debugging only: the --out JSON records "strict_load": false')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved: image, '
        'ground-truth overlay, prediction overlay, the expression and the '
        "sample's IoU")
    parser.add_argument(
        '--show-activation',
        action='store_true',
        help='with --show-dir / --show: add the activation maps as heat '
        'maps over the image, beside the prediction (RSRefSeg: global '
        'activation sigmoid(Z_g) and mean local activation; RSRefSeg 2: '
        'the dense-prompt activation, sigmoid of the mask prompt)')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file, e.g. '
        'test_dataloader.dataset.data_root=data/rrsisd')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if args.show_activation and not (args.show or args.show_dir):
        parser.error('--show-activation draws into the --show-dir / --show '
                     'pictures; give one of them')
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    if args.out is not None:
        check_output_file(parser, args.out)
    return args


def check_output_file(parser, path: str) -> None:
    """Fail before any work when ``--out`` cannot be written.

    The leaderboard JSON is written after the whole evaluation; a path that
    is a directory, under a file, or in an unwritable directory would lose
    the per-sample results.
    """
    if osp.isdir(path):
        parser.error(f'--out {path} is a directory; give a file path')
    parent = osp.dirname(osp.abspath(path))
    probe = parent
    while not osp.exists(probe):
        probe = osp.dirname(probe)
    if not osp.isdir(probe):
        parser.error(f'--out {path}: {probe} is a file, not a directory')
    if not os.access(probe, os.W_OK):
        parser.error(f'--out {path}: {probe} is not writable')


def trigger_visualization_hook(cfg, args):
    """Switch the visualisation hook on for ``--show`` / ``--show-dir``."""
    default_hooks = cfg.default_hooks
    if 'visualization' not in default_hooks:
        raise RuntimeError(
            'VisualizationHook must be included in default_hooks; refer to '
            'the configs under configs/_base_/schedules')
    hook = default_hooks['visualization']
    hook['draw'] = True
    if args.show_activation:
        hook['draw_activation'] = True
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        visualizer = cfg.visualizer
        visualizer['save_dir'] = args.show_dir
    return cfg


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

    # Fail on an unreadable file before building anything; the keys are
    # checked against the model by RefSegCheckpointHook when the runner
    # loads it, before any sample is scored.
    read_checkpoint(args.checkpoint, mmap=True)
    cfg.load_from = args.checkpoint
    add_checkpoint_hook(cfg, strict=not args.non_strict)

    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)

    if args.out is not None:
        dataset = cfg.test_dataloader.dataset
        evaluators = cfg.test_evaluator if isinstance(
            cfg.test_evaluator, list) else [cfg.test_evaluator]
        for evaluator in evaluators:
            if evaluator.get('type') == 'RefSegIoUMetric':
                evaluator['output_file'] = args.out
                evaluator['output_meta'] = dict(
                    config=args.config,
                    checkpoint=args.checkpoint,
                    dataset=dataset.get('type'),
                    data_root=dataset.get('data_root'),
                    split=dataset.get('split'),
                    strict_load=not args.non_strict)

    runner = Runner.from_cfg(cfg)
    runner.test()


if __name__ == '__main__':
    main()
