# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Time ``RefSegIoUMetric`` on random masks (no model, no data needed).

Example (the RRSIS-D test split: 3,481 samples of 800x800)::

    python tools/analysis_tools/benchmark_metric.py --num-samples 3481 \
        --size 800
"""
import argparse
import time

import torch
from mmengine.utils import ProgressBar

from mmrsrefseg.evaluation import RefSegIoUMetric


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='Benchmark RefSegIoUMetric.process + compute_metrics '
        'on random binary masks.')
    parser.add_argument(
        '--num-samples',
        type=int,
        default=3481,
        help='number of samples (RRSIS-D test: 3481)')
    parser.add_argument(
        '--size', type=int, default=800, help='mask height = width, pixels')
    parser.add_argument(
        '--eval-size',
        type=int,
        default=None,
        help='evaluate at EVAL_SIZE x EVAL_SIZE (e.g. 480, the LAVT/RMSIN '
        'protocol) instead of the original resolution')
    parser.add_argument(
        '--batch-size', type=int, default=8, help='samples per process call')
    parser.add_argument(
        '--pool',
        type=int,
        default=16,
        help='distinct random masks generated up front and cycled through '
        '(mask generation is not timed)')
    parser.add_argument(
        '--device',
        default='cpu',
        help='device the masks are on, as a segmentor leaves them (e.g. '
        'cuda: the metric copies them to the CPU; default: cpu)')
    parser.add_argument(
        '--no-breakdown',
        action='store_true',
        help='overall numbers only (breakdown=False): no per-category / '
        'per-size tables')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    return parser.parse_args()


def make_pool(num: int, size: int, seed: int) -> list:
    """``num`` random (pred, gt) pairs shaped like a segmentor's output.

    Returns:
        list[tuple[Tensor, Tensor]]: float32 prediction and int64 ground
        truth, both (1, size, size) with values 0/1 (gt has a few 255).
    """
    gen = torch.Generator().manual_seed(seed)
    pool = []
    for _ in range(num):
        gt = (torch.rand(1, size, size, generator=gen) < 0.3).long()
        flip = torch.rand(1, size, size, generator=gen) < 0.1
        pred = torch.where(flip, 1 - gt, gt).float()
        gt[torch.rand(1, size, size, generator=gen) < 0.01] = 255
        pool.append((pred, gt))
    return pool


def main() -> None:
    """Run the benchmark and print samples/s and total seconds."""
    args = parse_args()
    pool = [(pred.to(args.device), gt.to(args.device))
            for pred, gt in make_pool(args.pool, args.size, args.seed)]
    metric = RefSegIoUMetric(
        eval_size=args.eval_size, breakdown=not args.no_breakdown)
    ori_shape = (args.size, args.size)

    progress = ProgressBar(args.num_samples)
    start, cpu_start = time.perf_counter(), time.process_time()
    for first in range(0, args.num_samples, args.batch_size):
        batch = []
        for idx in range(first, min(first + args.batch_size,
                                    args.num_samples)):
            pred, gt = pool[idx % len(pool)]
            batch.append(
                dict(
                    pred_sem_seg=dict(data=pred),
                    gt_sem_seg=dict(data=gt),
                    ref_id=idx,
                    image_id=idx,
                    text='random mask',
                    category_id=idx % 20,
                    ori_shape=ori_shape,
                    img_path=f'{idx}.jpg'))
        metric.process({}, batch)
        progress.update(len(batch))  # one terminal write per batch
    process_s = time.perf_counter() - start
    metrics = metric.compute_metrics(metric.results)
    total_s = time.perf_counter() - start
    cpu_s = time.process_time() - cpu_start
    print()
    print(f'metrics: {metrics}')
    print(f'samples: {args.num_samples}  size: {args.size}x{args.size}  '
          f'protocol: {metric.protocol}  device: {args.device}  '
          f'breakdown: {"on" if metric.breakdown else "off"}')
    print(f'process: {process_s:.2f} s  compute_metrics: '
          f'{total_s - process_s:.3f} s  total: {total_s:.2f} s  '
          f'({args.num_samples / total_s:.0f} samples/s)  CPU time, all '
          f'threads: {cpu_s:.2f} s')


if __name__ == '__main__':
    main()
