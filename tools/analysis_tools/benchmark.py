# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Training and inference speed and peak memory of a config's model.

Random weights (nothing is read or downloaded; the model is built directly
on the device), random RGB images at the config's SAM input size and random
token ids of realistic lengths. Each model is built once and measured at
every ``--batch-size``, training (forward + backward + AdamW) and inference.
One table gives, per model, mode and batch: images/s, seconds per step, the
model TFLOP per image (``torch.utils.flop_counter`` on one batch-1 step run
eagerly), MFU and the peak memory (CUDA: ``torch.cuda.max_memory_allocated``;
CPU: the process's peak resident set size, reset before each measurement
where Linux allows it). MFU is the model FLOPs per second over this
device's dense matmul peak in that precision, measured at a size that
saturates it (CUDA: 8192^3; CPU: 2048^3); with ``--compare-authors`` both
models' MFU use the authors' FLOP count (the work the function needs, not
what an implementation spends on padding). A batch that does not fit the
device is reported as OOM.

``--compare-authors`` measures the authors' composition too (transformers
``SamModel`` + ``SiglipModel`` + peft LoRA, their forward and loss; the
reference of the parity tests, :mod:`mmrsrefseg.testing`) on the same shapes
and precision, each model in its own subprocess so that peak memories do not
mix, then prints the authors' time divided by ours per mode and batch and,
per batch, a line::

    speed-up vs authors (batch N): train X.XXx, inference X.XXx; peak memory: ours X.X GiB, authors X.X GiB

``--profile`` adds, per model and mode, the top kernels of one step at the
largest batch that fits (``torch.profiler``; self CUDA time on CUDA, self CPU
time on CPU).

Example::

    python tools/analysis_tools/benchmark.py configs/rsrefseg_vitb.py \\
        --compare-authors --device cuda --amp --batch-size 1 8 32
    python tools/analysis_tools/benchmark.py configs/rsrefseg_vitb.py \\
        --compare-authors --device cpu --batch-size 1 --warmup 1 --iters 3
"""  # noqa: E501
import argparse
import copy
import gc
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

import torch
from mmengine.config import Config, DictAction
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules
from tqdm import tqdm

TEXTS = [
    'the storage tank on the right', 'A airplane at the bottom',
    'the white vehicle next to the large building', 'the ship in the middle'
]
MODES = (('train', 'train (fwd+bwd+AdamW)'), ('infer', 'inference'))


def parse_args():
    parser = argparse.ArgumentParser(
        description='Benchmark a training step (forward + backward + AdamW) '
        'and inference of the model of CONFIG with random weights: images/s, '
        'model FLOPs, MFU and peak memory per batch size; optionally side by '
        "side with the authors' composition.")
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--batch-size',
        type=int,
        nargs='+',
        default=[1],
        help='one or more batch sizes, each measured with the same model')
    parser.add_argument(
        '--device',
        default='cuda' if torch.cuda.is_available() else 'cpu',
        help='cpu or cuda (default: cuda when available)')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='bf16 autocast (CUDA and CPU); default fp32')
    parser.add_argument('--warmup', type=int, default=2, help='warm-up steps')
    parser.add_argument('--iters', type=int, default=5, help='timed steps')
    parser.add_argument(
        '--image-size',
        type=int,
        default=None,
        help="override the SAM input size (e.g. 512 on CPU); default: the "
        "config's")
    parser.add_argument(
        '--skip-train', action='store_true', help='inference only')
    parser.add_argument(
        '--compare-authors',
        action='store_true',
        help="also measure the authors' composition (SigLIP configs), each "
        'model in its own subprocess, and print the speed-ups')
    parser.add_argument(
        '--profile',
        action='store_true',
        help='print the top kernels of one step per model and mode '
        '(torch.profiler) at the largest batch that fits')
    parser.add_argument(
        '--profile-rows',
        type=int,
        default=15,
        help='kernels listed per profile (default 15)')
    parser.add_argument(
        '--model',
        choices=['ours', 'authors'],
        default='ours',
        help='which model this process measures (used by --compare-authors)')
    parser.add_argument(
        '--json-out', help='write the measurements to this JSON file')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value')
    return parser.parse_args()


def make_batch(batch_size, size, device):
    """Random RGB 0-255 images and data samples with texts and masks."""
    inputs = torch.randint(
        0, 256, (batch_size, 3, size, size), device=device).float()
    samples = []
    for i in range(batch_size):
        s = SegDataSample(
            metainfo=dict(
                text=TEXTS[i % len(TEXTS)],
                img_shape=(size, size),
                pad_shape=(size, size),
                ori_shape=(size, size)))
        gt = torch.zeros(1, size, size, dtype=torch.long, device=device)
        gt[:, size // 4:size // 2, size // 3:size // 2] = 1
        s.gt_sem_seg = PixelData(data=gt)
        samples.append(s)
    return inputs, samples


def _proc_status_gib(field):
    """A ``/proc/self/status`` memory field in GiB, or None."""
    try:
        with open('/proc/self/status') as f:
            match = re.search(rf'^{field}:\s+(\d+) kB', f.read(), re.M)
    except OSError:
        return None
    return int(match.group(1)) / 2**20 if match else None


def reset_peak_memory(device):
    """Start a new peak-memory measurement.

    Returns:
        bool: Whether the peak was reset (CPU: Linux resets the peak RSS
        through ``/proc/self/clear_refs``; elsewhere the process peak so far
        stays).
    """
    if device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
        return True
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    except OSError:
        return False
    return True


def peak_memory_gib(device):
    if device.startswith('cuda'):
        return torch.cuda.max_memory_allocated() / 2**30
    peak = _proc_status_gib('VmHWM')
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return peak


def synchronize(device):
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def matmul_peak_flops(device, dtype, reps=10):
    """Measured dense matmul FLOP/s of this device in ``dtype``.

    n = 8192 on CUDA (large enough to saturate a data-centre GPU), 2048 on
    CPU (what fits and runs in seconds).
    """
    n = 8192 if device.startswith('cuda') else 2048
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b  # first call: kernel selection, allocations
    best = float('inf')
    for _ in range(reps):
        synchronize(device)
        t = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def count_flops(fn):
    """FLOPs of one call of ``fn``, its compiled regions run eagerly.

    ``torch.compile``-d code (e.g. FlexAttention on CUDA) would hide its
    matmuls from the counter; ``set_stance('force_eager')`` runs it as plain
    PyTorch ops, which count the function's work.
    """
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with torch.compiler.set_stance('force_eager'), counter:
        fn()
    return counter.get_total_flops()


def timed(fn, warmup, iters, device, desc):
    """Seconds per call of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    start = time.perf_counter()
    for _ in tqdm(range(iters), desc=desc, leave=False):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / iters


def profile_table(fn, device, rows):
    """The top kernels of one call of ``fn`` (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU]
    sort_by = 'self_cpu_time_total'
    if device.startswith('cuda'):
        activities.append(ProfilerActivity.CUDA)
        sort_by = 'self_cuda_time_total'
    with profile(activities=activities) as prof:
        fn()
        synchronize(device)
    return prof.key_averages().table(sort_by=sort_by, row_limit=rows)


def build_ours(model_cfg, device):
    with torch.device(device):  # random init on the device: seconds
        model = MODELS.build(model_cfg)
    model.to(device)
    synthetic_tokenizer(model.backbone)
    optim = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def loss_fn(inputs, samples):
        losses = model(inputs, samples, mode='loss')
        return sum(v for k, v in losses.items() if 'loss' in k)

    def infer_fn(inputs, samples):
        return model(inputs, samples, mode='tensor')

    return model, optim, loss_fn, infer_fn, torch.inference_mode


def build_authors(model_cfg, device):
    from mmrsrefseg.testing import build_authors_from_config
    vocab = model_cfg.backbone.config.text_config.vocab_size
    with torch.device(device):
        model = build_authors_from_config(
            model_cfg.to_dict(), tokenizer=SyntheticTokenizer(vocab))
    model.to(device)
    optim = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def loss_fn(inputs, samples):
        gt = torch.cat([s.gt_sem_seg.data for s in samples])
        return model.loss(inputs / 255., [s.text for s in samples], gt)

    def infer_fn(inputs, samples):  # mmengine's ValLoop runs under no_grad
        return model(inputs / 255., [s.text for s in samples])

    return model, optim, loss_fn, infer_fn, torch.no_grad


def _free(device):
    gc.collect()
    if device.startswith('cuda'):
        torch.cuda.empty_cache()


def measure(args, cfg):
    """Measure one model at every batch size; returns a dict of figures."""
    model_cfg = copy.deepcopy(cfg.model)
    if args.image_size:
        size = args.image_size
        model_cfg.decode_head.image_size = size
        model_cfg.data_preprocessor.size = (size, size)
        embed = size // model_cfg.decode_head.get('encoder_cfg', {}).get(
            'patch_size', 16)
        model_cfg.neck.mask_prompt_size = (4 * embed, 4 * embed)
    size = model_cfg.decode_head.get('image_size', 1024)
    if args.model == 'authors':
        # one process, no SyncBN: the authors' SyncBN is BN here
        built = build_authors(model_cfg, args.device)
    else:
        if model_cfg.neck.get('norm_cfg', {}).get('type') == 'SyncBN':
            model_cfg.neck.norm_cfg = dict(type='BN', requires_grad=True)
        built = build_ours(model_cfg, args.device)
    model, optim, loss_fn, infer_fn, no_grad = built
    dtype = torch.bfloat16 if args.amp else torch.float32
    device_type = 'cuda' if args.device.startswith('cuda') else 'cpu'

    def step_fn(mode, inputs, samples):
        if mode == 'train':

            def train_step():
                optim.zero_grad(set_to_none=True)
                with torch.autocast(
                        device_type, dtype=dtype, enabled=args.amp):
                    loss = loss_fn(inputs, samples)
                loss.backward()
                optim.step()

            return train_step

        def infer_step():
            with no_grad(), torch.autocast(
                    device_type, dtype=dtype, enabled=args.amp):
                infer_fn(inputs, samples)

        return infer_step

    result = dict(
        model=args.model,
        size=size,
        device=args.device,
        device_name=torch.cuda.get_device_name()
        if device_type == 'cuda' else f'CPU ({torch.get_num_threads()} '
        'threads)',
        torch=torch.__version__,
        precision='bf16 autocast' if args.amp else 'fp32',
        matmul_peak=matmul_peak_flops(args.device, dtype),
        rows=[],
        profiles={})
    modes = [m for m, _ in MODES if not (args.skip_train and m == 'train')]
    for mode in modes:
        model.train(mode == 'train')
        inputs, samples = make_batch(1, size, args.device)
        flops = count_flops(step_fn(mode, inputs, samples))
        del inputs, samples
        largest = None
        for batch in args.batch_size:
            row = dict(mode=mode, batch=batch, flops_per_image=flops)
            _free(args.device)
            row['peak_reset'] = reset_peak_memory(args.device)
            try:
                inputs, samples = make_batch(batch, size, args.device)
                row['s_step'] = timed(
                    step_fn(mode, inputs, samples), args.warmup, args.iters,
                    args.device, f'{args.model} {mode} batch {batch}')
                largest = batch
            except torch.OutOfMemoryError:
                row['s_step'] = None  # reported as OOM
                optim.zero_grad(set_to_none=True)
            inputs = samples = None
            row['peak_gib'] = peak_memory_gib(args.device)
            result['rows'].append(row)
            # progress that survives a time limit on the whole run
            speed = 'OOM' if row['s_step'] is None else (
                f"{row['s_step']:.3f} s/step")
            print(
                f'[{args.model}] {mode} batch {batch}: {speed}, peak '
                f"{row['peak_gib']:.1f} GiB",
                flush=True)
        if args.profile and largest is not None:
            _free(args.device)
            inputs, samples = make_batch(largest, size, args.device)
            result['profiles'][f'{mode} batch {largest}'] = profile_table(
                step_fn(mode, inputs, samples), args.device, args.profile_rows)
            inputs = samples = None
    return result


def print_table(args, results):
    """One table: every model, mode and batch; then ratios and profiles."""
    first = results[0]
    reference = {
        (r['mode'], r['batch']): r['flops_per_image']
        for r in results[-1]['rows']
    } if args.compare_authors else {}
    print(f"{args.config}: {first['device_name']}, torch {first['torch']}, "
          f"{first['size']}x{first['size']}, {first['precision']}; matmul "
          f"peak {first['matmul_peak'] / 1e12:.1f} TFLOP/s")
    if reference:
        print("MFU on the authors' FLOP count (the function's work)")
    cpu_peak = '' if first['device'].startswith('cuda') else (
        ' (CPU: peak RSS)')
    print(f"{'model':<9}{'mode':<23}{'batch':>6}{'images/s':>10}"
          f"{'s/step':>9}{'TFLOP/img':>11}{'MFU':>7}{'peak GiB':>10}"
          f'{cpu_peak}')
    for res in results:
        for r in res['rows']:
            label = dict(MODES)[r['mode']]
            head = (f"{res['model']:<9}{label:<23}{r['batch']:>6}")
            tflop = r['flops_per_image'] / 1e12
            if r['s_step'] is None:
                print(f"{head}{'OOM':>10}{'':>9}{tflop:>11.3g}{'':>7}"
                      f"{r['peak_gib']:>10.1f}")
                continue
            work = reference.get((r['mode'], r['batch']), r['flops_per_image'])
            mfu = work * r['batch'] / r['s_step'] / res['matmul_peak']
            note = '' if r['peak_reset'] else ' (process peak)'
            print(f"{head}{r['batch'] / r['s_step']:>10.3f}"
                  f"{r['s_step']:>9.3f}{tflop:>11.3g}{mfu:>7.1%}"
                  f"{r['peak_gib']:>10.1f}{note}")
    if args.compare_authors:
        print_ratios(*results)
    for res in results:
        for key, table in res['profiles'].items():
            print(f"\ntop kernels: {res['model']}, {key}\n{table}")


def print_ratios(ours, theirs):
    """The authors' time divided by ours, per mode and batch."""
    mine = {(r['mode'], r['batch']): r for r in ours['rows']}
    print("\nauthors' time / ours (> 1: ours faster)")
    summary = {}
    for r in theirs['rows']:
        o = mine[(r['mode'], r['batch'])]
        if r['s_step'] is None or o['s_step'] is None:
            ratio = float('nan')
            text = 'OOM (' + ('authors' if r['s_step'] is None else 'ours') \
                + ')'
        else:
            ratio = r['s_step'] / o['s_step']
            text = f'{ratio:.2f}x'
        print(f"  {dict(MODES)[r['mode']]:<23} batch {r['batch']:>3}: {text}")
        summary.setdefault(r['batch'], {})[r['mode']] = (ratio, o['peak_gib'],
                                                         r['peak_gib'])
    for batch, modes in summary.items():
        parts = [
            f'{name} {modes[key][0]:.2f}x'
            for key, name in (('train', 'train'), ('infer', 'inference'))
            if key in modes
        ]
        peak = max(modes.values(), key=lambda m: m[1])
        print(f"speed-up vs authors (batch {batch}): {', '.join(parts)}; "
              f'peak memory: ours {peak[1]:.1f} GiB, authors {peak[2]:.1f} '
              'GiB')


def run_worker(which):
    """Run this script for one model in a subprocess; return its JSON."""
    argv = [a for a in sys.argv[1:] if a != '--compare-authors']
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, 'result.json')
        subprocess.run(
            [sys.executable, sys.argv[0]] + argv +
            ['--model', which, '--json-out', out],
            check=True)
        with open(out) as f:
            return json.load(f)


def main():
    args = parse_args()
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.compare_authors:
        results = [run_worker('ours'), run_worker('authors')]
    else:
        results = [measure(args, cfg)]
        if args.json_out:
            with open(args.json_out, 'w') as f:
                json.dump(results[0], f)
            return
    print_table(args, results)


class SyntheticTokenizer:
    """Random ids of realistic lengths, called like an HF tokenizer.

    Each expression becomes ``len(words) + 1`` ids (words and EOS), padded
    to the longest (``padding=True``, as the authors tokenise).
    """

    def __init__(self, vocab_size: int, max_length: int = 64):
        self.vocab_size = vocab_size
        self.max_length = max_length

    def __call__(self, texts, padding='longest', **kwargs):
        lengths = [min(len(t.split()) + 1, self.max_length) for t in texts]
        width = self.max_length if padding == 'max_length' else max(lengths)
        gen = torch.Generator().manual_seed(0)
        ids = torch.randint(
            0, self.vocab_size, (len(texts), width), generator=gen)
        mask = torch.zeros(len(texts), width, dtype=torch.long)
        for i, n in enumerate(lengths):
            mask[i, :n] = 1
        return {'input_ids': ids, 'attention_mask': mask}


def synthetic_tokenizer(backbone):
    """Replace the backbone's tokenisation by :class:`SyntheticTokenizer`.

    Benchmarks run without weights or tokenizer files (hub ids are not
    reachable offline); the encoders see the same sequence lengths as with
    the real tokenizer (CLIP adds a BOS token; the sequences are padded the
    way the backbone pads).
    """
    vocab = backbone.model.config.text_config.vocab_size
    tok = SyntheticTokenizer(vocab, backbone.max_length)
    extra = 1 if backbone.model_type == 'clip' else 0  # CLIP's BOS

    def tokenize(texts, device=None):
        enc = tok([t + ' x' * extra for t in texts], padding='longest')
        return {k: v.to(device) for k, v in enc.items()}

    backbone.tokenize = tokenize


if __name__ == '__main__':
    main()
