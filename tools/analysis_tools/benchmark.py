# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Training and inference throughput and peak memory of a config's model.

Random weights (nothing is read or downloaded), random RGB images at the
config's SAM input size and random token ids of realistic lengths. Prints a
table of images/s for a forward+backward+optimizer step and for inference,
and the peak memory (CUDA: ``torch.cuda.max_memory_allocated``; CPU: the
process's peak resident set size).

Example::

    python tools/analysis_tools/benchmark.py configs/rsrefseg_vitb.py \\
        --batch-size 2 --amp --device cuda
"""
import argparse
import copy
import resource
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
        description='Benchmark forward+backward and inference throughput '
        '(images/s) and peak memory of the model of CONFIG with random '
        'weights.')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument(
        '--device',
        default='cuda' if torch.cuda.is_available() else 'cpu',
        help='cpu or cuda (default: cuda when available)')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='bf16 autocast (CUDA), as in the reference training')
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
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value')
    return parser.parse_args()


def make_batch(batch_size, size, device):
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


def timed(fn, warmup, iters, device, desc):
    for _ in range(warmup):
        fn()
    if device.startswith('cuda'):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in tqdm(range(iters), desc=desc, leave=False):
        fn()
    if device.startswith('cuda'):
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / iters


def main():
    args = parse_args()
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model_cfg = copy.deepcopy(cfg.model)
    if args.image_size:
        size = args.image_size
        model_cfg.decode_head.image_size = size
        model_cfg.data_preprocessor.size = (size, size)
        embed = size // model_cfg.decode_head.get('encoder_cfg', {}).get(
            'patch_size', 16)
        model_cfg.neck.mask_prompt_size = (4 * embed, 4 * embed)
    size = model_cfg.decode_head.get('image_size', 1024)
    model = MODELS.build(model_cfg).to(args.device)
    synthetic_tokenizer(model.backbone)
    inputs, samples = make_batch(args.batch_size, size, args.device)
    optim = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-4)
    dtype = torch.bfloat16 if args.amp else torch.float32
    device_type = 'cuda' if args.device.startswith('cuda') else 'cpu'

    def train_step():
        optim.zero_grad(set_to_none=True)
        with torch.autocast(device_type, dtype=dtype, enabled=args.amp):
            losses = model(inputs, samples, mode='loss')
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        loss.backward()
        optim.step()

    @torch.no_grad()
    def infer_step():
        with torch.autocast(device_type, dtype=dtype, enabled=args.amp):
            model(inputs, samples, mode='tensor')

    rows = []
    if not args.skip_train:
        model.train()
        t = timed(train_step, args.warmup, args.iters, args.device, 'train')
        rows.append(('train (fwd+bwd+step)', args.batch_size / t, t,
                     peak_memory_gib(args.device)))
    model.eval()
    t = timed(infer_step, args.warmup, args.iters, args.device, 'inference')
    rows.append(
        ('inference', args.batch_size / t, t, peak_memory_gib(args.device)))
    name = torch.cuda.get_device_name() if device_type == 'cuda' else (
        f'CPU ({torch.get_num_threads()} threads)')
    print(f'{args.config}: {name}, batch {args.batch_size}, {size}x{size}, '
          f"{'bf16 autocast' if args.amp else 'fp32'}")
    print(f"{'mode':<24}{'images/s':>12}{'s/iter':>10}{'peak GiB':>10}")
    for mode, ips, t, mem in rows:
        print(f'{mode:<24}{ips:>12.3f}{t:>10.3f}{mem:>10.2f}')


def synthetic_tokenizer(backbone):
    """Replace tokenisation by random ids of realistic lengths.

    Benchmarks run without weights or tokenizer files (hub ids are not
    reachable offline). Each expression becomes ``len(words) + 2`` random ids
    below the text vocabulary size, padded the way the backbone pads (to the
    longest for CLIP, to ``max_length`` for SigLIP), so the encoders see
    the same sequence lengths as with the real tokenizer.
    """
    vocab = backbone.model.config.text_config.vocab_size

    def tokenize(texts, device=None):
        lengths = [min(len(t.split()) + 2, backbone.max_length) for t in texts]
        width = backbone.max_length if backbone.model_type == 'siglip' \
            else max(lengths)
        ids = torch.randint(0, vocab, (len(texts), width))
        mask = torch.zeros(len(texts), width, dtype=torch.long)
        for i, n in enumerate(lengths):
            mask[i, :n] = 1
        return {'input_ids': ids.to(device), 'attention_mask': mask.to(device)}

    backbone.tokenize = tokenize


if __name__ == '__main__':
    main()
