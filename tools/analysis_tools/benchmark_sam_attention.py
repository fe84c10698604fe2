# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Time and peak memory of SAM's image-encoder attention and mask decoder.

Compares, on SAM ViT-B shapes at 1024x1024 input (random weights, random
inputs; nothing is read or downloaded):

* ``global``: one global-attention block's ``Attention`` (64x64 tokens, 768
  channels, 12 heads of dim 64, decomposed relative positions), per image;
* ``window``: one window block's ``Attention`` (the 64x64 grid padded to
  70x70: 25 windows of 14x14 tokens per image);

each as segment-anything's ``original`` ``Attention`` and as
:class:`mmrsrefseg.models.utils.SAMSDPAAttention` with ``sdpa_mask`` and
``sdpa_folded``; and

* ``decoder``: segment-anything's ``MaskDecoder`` (transformer dim 256, 64x64
  image embeddings, ``--num-prompts`` sparse prompt embeddings per image) on
  ``--decoder-batch`` images, image by image (``loop``, as
  ``SAMPromptHead.decode`` does) and in one pass
  (``batched``: :func:`mmrsrefseg.models.utils.batched_mask_decoder_forward`).

For each it reports the best-of-``--repeats`` wall time of a forward pass
under ``torch.no_grad()`` (inference) and of a forward+backward pass (w.r.t.
the input and all parameters), in fp32 and under bf16 autocast, and the peak
memory of each.

Peak memory (CPU) is the rise of the process's peak resident set size
(``VmHWM``, reset through ``/proc/self/clear_refs``) over the resident size
just before the pass, measured in a separate process started with
``MALLOC_MMAP_THRESHOLD_=65536`` so that glibc serves every tensor above 64
KiB by ``mmap`` and returns it on free (freed memory is not kept resident).
It counts every byte a pass touches (inputs excluded, outputs, saved
activations, gradients and kernel workspaces included). On CUDA it is
``torch.cuda.max_memory_allocated`` above the memory allocated before.

Example::

    python tools/analysis_tools/benchmark_sam_attention.py --threads 2 \\
        --repeats 5
"""
import argparse
import ctypes
import gc
import json
import os
import subprocess
import sys
import time

PARTS = ('global', 'window', 'decoder')
ATTN_IMPLS = ('original', 'sdpa_mask', 'sdpa_folded')
DECODER_IMPLS = ('loop', 'batched')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Time (best of N) and peak memory of SAM ViT-B '
        'attention implementations (original / sdpa_mask / sdpa_folded) '
        'and of the per-image vs batched SAM mask decoder, at 1024x1024 '
        'input, forward (no_grad) and forward+backward, fp32 and bf16 '
        'autocast.')
    parser.add_argument(
        '--parts',
        nargs='+',
        choices=PARTS,
        default=list(PARTS),
        help='what to benchmark (default: all)')
    parser.add_argument(
        '--dtypes',
        nargs='+',
        choices=('fp32', 'bf16'),
        default=['fp32', 'bf16'],
        help='fp32, and/or bf16 autocast (default: both)')
    parser.add_argument(
        '--batch-size',
        type=int,
        default=1,
        help='images per attention pass (default: 1)')
    parser.add_argument(
        '--decoder-batch',
        type=int,
        default=8,
        help='images per mask-decoder pass (default: 8)')
    parser.add_argument(
        '--num-prompts',
        type=int,
        default=49,
        help='sparse prompt embeddings per image (default: 49, RSRefSeg '
        'ViT-B config)')
    parser.add_argument(
        '--threads',
        type=int,
        default=2,
        help='torch CPU threads (default: 2)')
    parser.add_argument(
        '--repeats',
        type=int,
        default=5,
        help='timed runs per measurement; the best is reported '
        '(default: 5)')
    parser.add_argument(
        '--device',
        default='cpu',
        help='cpu or cuda (default: cpu; bf16 autocast on either)')
    parser.add_argument(
        '--no-memory',
        action='store_true',
        help='skip the peak-memory measurement')
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ----------------------------------------------------------------- worker


def _rss_kib(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{field} missing from /proc/self/status')


def _reset_peak_rss():
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0)."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    except OSError as e:
        raise RuntimeError(
            'cannot reset the peak RSS through /proc/self/clear_refs '
            f'({e}); rerun with --no-memory') from e


def _build(job, device):
    """Return ``(fn(grad: bool) -> Tensor, inputs, grad_out, module)``."""
    import torch

    from mmrsrefseg.models.utils import (SAMSDPAAttention,
                                         batched_mask_decoder_forward)
    from mmrsrefseg.utils.sam_import import import_segment_anything
    modeling, _ = import_segment_anything()
    torch.manual_seed(0)
    part, impl, b = job['part'], job['impl'], job['batch']
    if part in ('global', 'window'):
        grid = 64 if part == 'global' else 14
        attn = modeling.image_encoder.Attention(
            768,
            num_heads=12,
            qkv_bias=True,
            use_rel_pos=True,
            input_size=(grid, grid))
        torch.nn.init.normal_(attn.rel_pos_h, std=0.02)
        torch.nn.init.normal_(attn.rel_pos_w, std=0.02)
        if impl != 'original':
            attn = SAMSDPAAttention.from_attention(attn, impl)
        module = attn.to(device)
        n = b if part == 'global' else 25 * b
        inputs = [torch.randn(n, grid, grid, 768, device=device)]

        def fn(*xs):
            return module(xs[0])
    else:
        module = modeling.MaskDecoder(
            num_multimask_outputs=3,
            transformer=modeling.TwoWayTransformer(
                depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
            transformer_dim=256,
            iou_head_depth=3,
            iou_head_hidden_dim=256).to(device)
        inputs = [
            torch.randn(b, 256, 64, 64, device=device),
            torch.randn(1, 256, 64, 64, device=device),
            torch.randn(b, job['num_prompts'], 256, device=device),
            torch.randn(b, 256, 64, 64, device=device)
        ]

        if impl == 'batched':

            def fn(emb, pe, sparse, dense):
                return batched_mask_decoder_forward(module, emb, pe, sparse,
                                                    dense, False)[0]
        else:

            def fn(emb, pe, sparse, dense):
                return torch.cat([
                    module(emb[i:i + 1], pe, sparse[i:i + 1], dense[i:i + 1],
                           False)[0] for i in range(emb.shape[0])
                ])

    return fn, inputs, module


def _run_worker(job):
    import torch
    torch.set_num_threads(job['threads'])
    device = job['device']
    cuda = device.startswith('cuda')
    fn, inputs, module = _build(job, device)
    dtype = torch.bfloat16 if job['dtype'] == 'bf16' else torch.float32
    amp = job['dtype'] == 'bf16'
    with torch.no_grad(), torch.autocast(
            'cuda' if cuda else 'cpu', dtype=dtype, enabled=amp):
        grad_out = torch.randn_like(fn(*inputs))

    def step(train):
        module.zero_grad(set_to_none=True)
        xs = [x.detach().requires_grad_(train) for x in inputs]
        with torch.set_grad_enabled(train), torch.autocast(
                'cuda' if cuda else 'cpu', dtype=dtype, enabled=amp):
            out = fn(*xs)
        if train:
            out.backward(grad_out)
        del out, xs
        if cuda:
            torch.cuda.synchronize()

    result = {}
    for mode, train in (('fwd', False), ('fwd_bwd', True)):
        if job['measure'] == 'time':
            step(train)  # warm-up
            times = []
            for _ in range(job['repeats']):
                start = time.perf_counter()
                step(train)
                times.append(time.perf_counter() - start)
            result[mode] = min(times)
        else:
            step(train)  # warm-up (lazy buffers, oneDNN primitives)
            module.zero_grad(set_to_none=True)
            gc.collect()
            if cuda:
                torch.cuda.synchronize()
                base = torch.cuda.memory_allocated()
                torch.cuda.reset_peak_memory_stats()
                step(train)
                peak = torch.cuda.max_memory_allocated() - base
            else:
                ctypes.CDLL('libc.so.6').malloc_trim(0)
                _reset_peak_rss()
                base = _rss_kib('VmRSS') * 1024
                step(train)
                peak = _rss_kib('VmHWM') * 1024 - base
            result[mode] = peak
    return result


# ----------------------------------------------------------------- parent


def _spawn(job):
    env = dict(os.environ)
    if job['measure'] == 'memory':
        env['MALLOC_MMAP_THRESHOLD_'] = '65536'
    proc = subprocess.run([
        sys.executable,
        os.path.abspath(__file__), '--worker',
        json.dumps(job)
    ],
                          env=env,
                          capture_output=True,
                          text=True)
    if proc.returncode:
        raise RuntimeError(f'benchmark worker for {job} failed:\n'
                           f'{proc.stderr[-4000:]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(_run_worker(json.loads(args.worker))))
        return
    header = (f"{'part':<9}{'dtype':<6}{'impl':<13}{'fwd ms':>10}"
              f"{'x orig':>8}{'fwd+bwd ms':>12}{'x orig':>8}"
              f"{'fwd MiB':>10}{'fwd+bwd MiB':>13}")
    print(f'SAM ViT-B at 1024x1024, device {args.device}, {args.threads} '
          f'threads, best of {args.repeats}; attention batch '
          f'{args.batch_size} image(s), decoder batch {args.decoder_batch} '
          f'x {args.num_prompts} prompts')
    print(header)
    print('-' * len(header))
    for part in args.parts:
        impls = DECODER_IMPLS if part == 'decoder' else ATTN_IMPLS
        batch = args.decoder_batch if part == 'decoder' else args.batch_size
        for dtype in args.dtypes:
            base = None
            for impl in impls:
                job = dict(
                    part=part,
                    impl=impl,
                    dtype=dtype,
                    batch=batch,
                    num_prompts=args.num_prompts,
                    threads=args.threads,
                    repeats=args.repeats,
                    device=args.device,
                    measure='time')
                t = _spawn(job)
                mem = None if args.no_memory else _spawn(
                    dict(job, measure='memory'))
                base = base or t
                row = (f'{part:<9}{dtype:<6}{impl:<13}'
                       f"{t['fwd'] * 1e3:>10.1f}"
                       f"{base['fwd'] / t['fwd']:>8.2f}"
                       f"{t['fwd_bwd'] * 1e3:>12.1f}"
                       f"{base['fwd_bwd'] / t['fwd_bwd']:>8.2f}")
                if mem is not None:
                    row += (f"{mem['fwd'] / 2**20:>10.0f}"
                            f"{mem['fwd_bwd'] / 2**20:>13.0f}")
                print(row, flush=True)
    print('x orig: speed-up over the first implementation of the part '
          '(original / loop); MiB: peak memory above the inputs.')


if __name__ == '__main__':
    main()
