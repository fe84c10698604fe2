# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Training and inference speed and peak memory of a config's model.

Random weights (nothing is read or downloaded), random RGB images at the
config's SAM input size and random token ids of realistic lengths. Prints,
per mode, images/s, seconds per step, the model FLOPs (counted by
``torch.utils.flop_counter`` on the first warm-up step), the achieved FLOP/s
as a fraction of this machine's measured matmul peak in that precision
(MFU), and the peak memory (CUDA: ``torch.cuda.max_memory_allocated``; CPU:
the process's peak resident set size).

``--compare-authors`` measures the authors' composition too (transformers
``SamModel`` + ``SiglipModel`` + peft LoRA, their forward and loss; the
reference of the parity tests, :mod:`mmrsrefseg.testing`) on the same shapes
and precision, each model in its own subprocess so that peak memories do not
mix, and ends with the line::

    speed-up vs authors: train X.XXx, inference X.XXx; peak memory: ours X.X GiB, authors X.X GiB

Example::

    python tools/analysis_tools/benchmark.py configs/rsrefseg_vitb.py \\
        --compare-authors --device cpu --batch-size 1 --warmup 1 --iters 3
    python tools/analysis_tools/benchmark.py configs/rsrefseg_vitb.py \\
        --batch-size 2 --amp --device cuda
"""  # noqa: E501
import argparse
import copy
import json
import os
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


def parse_args():
    parser = argparse.ArgumentParser(
        description='Benchmark a training step (forward + backward + AdamW) '
        'and inference of the model of CONFIG with random weights: images/s, '
        'model FLOPs, MFU and peak memory; optionally side by side with the '
        "authors' composition.")
    parser.add_argument('config', help='config file path')
    parser.add_argument('--batch-size', type=int, default=1)
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


def peak_memory_gib(device):
    if device.startswith('cuda'):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def matmul_peak_flops(device, dtype, n=2048, reps=10):
    """Measured dense matmul FLOP/s of this device in ``dtype``."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float('inf')
    for _ in range(reps):
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def timed(fn, warmup, iters, device, desc):
    """Seconds per call of ``fn`` and the FLOPs of its first call."""
    from torch.utils.flop_counter import FlopCounterMode
    flops = 0
    for i in range(warmup):
        if i == 0:
            counter = FlopCounterMode(display=False)
            with counter:
                fn()
            flops = counter.get_total_flops()
        else:
            fn()
    if device.startswith('cuda'):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in tqdm(range(iters), desc=desc, leave=False):
        fn()
    if device.startswith('cuda'):
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / iters, flops


def build_ours(model_cfg, device):
    model = MODELS.build(model_cfg).to(device)
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
    model = build_authors_from_config(
        model_cfg.to_dict(), tokenizer=SyntheticTokenizer(vocab)).to(device)
    optim = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def loss_fn(inputs, samples):
        gt = torch.cat([s.gt_sem_seg.data for s in samples])
        return model.loss(inputs / 255., [s.text for s in samples], gt)

    def infer_fn(inputs, samples):  # mmengine's ValLoop runs under no_grad
        return model(inputs / 255., [s.text for s in samples])

    return model, optim, loss_fn, infer_fn, torch.no_grad


def measure(args, cfg):
    """Measure one model; returns a dict of figures."""
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
    inputs, samples = make_batch(args.batch_size, size, args.device)
    dtype = torch.bfloat16 if args.amp else torch.float32
    device_type = 'cuda' if args.device.startswith('cuda') else 'cpu'

    def train_step():
        optim.zero_grad(set_to_none=True)
        with torch.autocast(device_type, dtype=dtype, enabled=args.amp):
            loss = loss_fn(inputs, samples)
        loss.backward()
        optim.step()

    def infer_step():
        with no_grad(), torch.autocast(
                device_type, dtype=dtype, enabled=args.amp):
            infer_fn(inputs, samples)

    result = dict(model=args.model, size=size, batch=args.batch_size)
    if not args.skip_train:
        model.train()
        t, flops = timed(train_step, args.warmup, args.iters, args.device,
                         f'{args.model} train')
        result.update(train_s=t, train_flops=flops)
    model.eval()
    if device_type == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    t, flops = timed(infer_step, args.warmup, args.iters, args.device,
                     f'{args.model} inference')
    result.update(infer_s=t, infer_flops=flops)
    result['peak_gib'] = peak_memory_gib(args.device)
    result['matmul_peak'] = matmul_peak_flops(args.device, dtype)
    return result


def print_rows(args, results):
    name = torch.cuda.get_device_name() if args.device.startswith(
        'cuda') else f'CPU ({torch.get_num_threads()} threads)'
    first = results[0]
    print(f"{args.config}: {name}, batch {first['batch']}, "
          f"{first['size']}x{first['size']}, "
          f"{'bf16 autocast' if args.amp else 'fp32'}; matmul peak "
          f"{first['matmul_peak'] / 1e9:.0f} GFLOP/s")
    print(f"{'model':<9}{'mode':<22}{'images/s':>10}{'s/step':>9}"
          f"{'TFLOP':>8}{'MFU':>7}{'peak GiB':>10}")
    for r in results:
        for mode, key in (('train (fwd+bwd+AdamW)', 'train'), ('inference',
                                                               'infer')):
            if f'{key}_s' not in r:
                continue
            t, flops = r[f'{key}_s'], r[f'{key}_flops']
            mfu = flops / t / r['matmul_peak']
            print(f"{r['model']:<9}{mode:<22}{r['batch'] / t:>10.3f}"
                  f"{t:>9.2f}{flops / 1e12:>8.2f}{mfu:>7.1%}"
                  f"{r['peak_gib']:>10.1f}")


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
    print_rows(args, results)
    if args.compare_authors:
        ours, theirs = results
        train = theirs.get('train_s', float('nan')) / ours.get(
            'train_s', float('nan'))
        print(f"speed-up vs authors: train {train:.2f}x, inference "
              f"{theirs['infer_s'] / ours['infer_s']:.2f}x; peak memory: "
              f"ours {ours['peak_gib']:.1f} GiB, authors "
              f"{theirs['peak_gib']:.1f} GiB")


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
