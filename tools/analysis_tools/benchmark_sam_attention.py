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
  ``SAMPromptHead`` with ``batched_decoder=False`` does) and in one pass
  (``batched``: :func:`mmrsrefseg.models.utils.batched_mask_decoder_forward`);
* ``encoder`` (only when asked for: minutes per pass on a CPU): the whole
  ViT-B ``ImageEncoderViT`` (4 global + 8 window blocks) with each attention
  implementation.

For each it reports the best-of-``--repeats`` time (wall clock, or with
``--timer cpu`` the process's CPU time, steadier on a shared machine) of a
forward pass under ``torch.no_grad()`` (inference) and of a forward+backward
pass (w.r.t. the inputs and all parameters), in fp32 and under bf16
autocast. The implementations of a part run in one process, interleaved
(repeat r of each, then repeat r + 1), so that load from other processes
hits them alike.

Memory (CPU) is read from the process's resident set size: the peak
(``VmHWM``, reset through ``/proc/self/clear_refs``) or the current size
(``VmRSS``) minus the resident size just before the pass, in a separate
process started with ``MALLOC_MMAP_THRESHOLD_=65536`` so that glibc serves
every tensor above 64 KiB by ``mmap`` and unmaps it on free (freed memory is
not kept resident). It counts every byte a pass touches: outputs, saved
activations, gradients and kernel workspaces (not the inputs). On CUDA it is
``torch.cuda.max_memory_allocated`` / ``memory_allocated`` above the memory
allocated before.

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
from functools import partial

PARTS = ('global', 'window', 'decoder', 'encoder')
ATTN_IMPLS = ('original', 'sdpa_mask', 'sdpa_folded')
DECODER_IMPLS = ('loop', 'batched')
ENCODER_IMPLS = ATTN_IMPLS
IMPLS = {
    'global': ATTN_IMPLS,
    'window': ATTN_IMPLS,
    'decoder': DECODER_IMPLS,
    'encoder': ENCODER_IMPLS
}


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
        default=list(PARTS[:3]),
        help='what to benchmark (default: global window decoder; encoder, '
        'the whole ViT-B image encoder, takes minutes per pass on a CPU)')
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
        '--timer',
        choices=('wall', 'cpu'),
        default='wall',
        help='wall: time.perf_counter; cpu: time.process_time, the CPU '
        'time of all threads of the process, less sensitive to other '
        'processes on a shared machine (CPU only; default: wall)')
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


def _build(job, impl):
    """Return ``(fn, inputs, module)`` of one implementation of a part."""
    import torch

    from mmrsrefseg.models.utils import (SAMSDPAAttention,
                                         batched_mask_decoder_forward,
                                         replace_sam_attention)
    from mmrsrefseg.utils.sam_import import import_segment_anything
    modeling, _ = import_segment_anything()
    torch.manual_seed(0)
    part, b, device = job['part'], job['batch'], job['device']
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

        def fn(x):
            return module(x)
    elif part == 'encoder':
        # segment_anything.build_sam.build_sam_vit_b's image encoder
        module = modeling.ImageEncoderViT(
            depth=12,
            embed_dim=768,
            img_size=1024,
            mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=12,
            patch_size=16,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=(2, 5, 8, 11),
            window_size=14,
            out_chans=256).to(device)
        if impl != 'original':
            replace_sam_attention(module, impl)
        inputs = [torch.randn(b, 3, 1024, 1024, device=device)]

        def fn(x):
            return module(x)
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


def _make_step(job, impl):
    """A closure running one forward (train=False: under no_grad) or one
    forward+backward pass of ``impl``."""
    import torch
    fn, inputs, module = _build(job, impl)
    cuda = job['device'].startswith('cuda')
    amp = job['dtype'] == 'bf16'
    autocast = dict(
        device_type='cuda' if cuda else 'cpu',
        dtype=torch.bfloat16,
        enabled=amp)
    with torch.no_grad(), torch.autocast(**autocast):
        grad_out = torch.randn_like(fn(*inputs))

    def step(train, after_forward=None):
        module.zero_grad(set_to_none=True)
        xs = [x.detach().requires_grad_(train) for x in inputs]
        with torch.set_grad_enabled(train), torch.autocast(**autocast):
            out = fn(*xs)
        if after_forward is not None:
            after_forward()
        if train:
            out.backward(grad_out)
        del out, xs
        if cuda:
            torch.cuda.synchronize()

    return step, module


def _memory(step, module, cuda):
    """Memory in bytes of the passes of ``step`` above the memory before.

    Returns:
        dict: ``fwd``: peak of a forward under ``no_grad``; ``saved``:
        held after a forward with gradients (output and what autograd keeps
        for backward, i.e. the activation memory a block adds in training);
        ``fwd_bwd``: peak of a forward+backward.
    """
    import torch

    def current():
        if cuda:
            torch.cuda.synchronize()
            return torch.cuda.memory_allocated()
        return _rss_kib('VmRSS') * 1024

    def start():
        module.zero_grad(set_to_none=True)
        gc.collect()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            ctypes.CDLL('libc.so.6').malloc_trim(0)
            _reset_peak_rss()
        return current()

    def peak():
        if cuda:
            return torch.cuda.max_memory_allocated()
        return _rss_kib('VmHWM') * 1024

    result = {}
    step(False)  # warm-up (lazy buffers, oneDNN primitives)
    base = start()
    step(False)
    result['fwd'] = peak() - base
    step(True)  # warm-up
    base = start()
    held = []
    step(True, after_forward=lambda: held.append(current()))
    result['fwd_bwd'] = peak() - base
    result['saved'] = held[0] - base
    return result


def _run_worker(job):
    """Measure every implementation of ``job['part']`` in this process.

    Timing interleaves the implementations (repeat r of each, then repeat
    r + 1), so that load from other processes hits them alike; the best of
    ``job['repeats']`` is kept. Memory is measured one implementation after
    the other, each step's peak above the memory before it.
    """
    import torch
    torch.set_num_threads(job['threads'])
    cuda = job['device'].startswith('cuda')
    result = {impl: {} for impl in job['impls']}
    if job['measure'] == 'memory':
        for impl in job['impls']:
            step, module = _make_step(job, impl)
            result[impl] = _memory(step, module, cuda)
            del step, module
        return result
    steps = {impl: _make_step(job, impl)[0] for impl in job['impls']}
    for mode, train in (('fwd', False), ('fwd_bwd', True)):
        for step in steps.values():
            step(train)  # warm-up
        times = {impl: [] for impl in steps}
        clock = time.process_time if job['timer'] == 'cpu' \
            else time.perf_counter
        for _ in range(job['repeats']):
            for impl, step in steps.items():
                start = clock()
                step(train)
                times[impl].append(clock() - start)
        for impl in steps:
            result[impl][mode] = min(times[impl])
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
    header = (f"{'part':<9}{'dtype':<6}{'impl':<20}{'fwd ms':>10}"
              f"{'x orig':>8}{'fwd+bwd ms':>12}{'x orig':>8}"
              f"{'fwd MiB':>10}{'saved MiB':>11}{'fwd+bwd MiB':>13}")
    if args.timer == 'cpu' and args.device != 'cpu':
        raise ValueError('--timer cpu measures CPU time; use it with '
                         f'--device cpu, not {args.device!r}')
    print(f'SAM ViT-B at 1024x1024, device {args.device}, {args.threads} '
          f'threads, best of {args.repeats} ({args.timer} time, '
          f'load average {os.getloadavg()[0]:.1f}); attention batch '
          f'{args.batch_size} image(s), decoder batch {args.decoder_batch} '
          f'x {args.num_prompts} prompts')
    print(header)
    print('-' * len(header))
    for part in args.parts:
        impls = IMPLS[part]
        batch = args.decoder_batch if part == 'decoder' else args.batch_size
        for dtype in args.dtypes:
            job = dict(
                part=part,
                impls=impls,
                dtype=dtype,
                batch=batch,
                num_prompts=args.num_prompts,
                threads=args.threads,
                repeats=args.repeats,
                timer=args.timer,
                device=args.device,
                measure='time')
            times = _spawn(job)
            mem = None if args.no_memory else _spawn(
                dict(job, measure='memory'))
            base = times[impls[0]]
            for impl in impls:
                t = times[impl]
                row = (f'{part:<9}{dtype:<6}{impl:<20}'
                       f"{t['fwd'] * 1e3:>10.1f}"
                       f"{base['fwd'] / t['fwd']:>8.2f}"
                       f"{t['fwd_bwd'] * 1e3:>12.1f}"
                       f"{base['fwd_bwd'] / t['fwd_bwd']:>8.2f}")
                if mem is not None:
                    row += (f"{mem[impl]['fwd'] / 2**20:>10.0f}"
                            f"{mem[impl]['saved'] / 2**20:>11.0f}"
                            f"{mem[impl]['fwd_bwd'] / 2**20:>13.0f}")
                print(row, flush=True)
    print('x orig: speed-up over the first implementation of the part '
          '(original / loop). fwd / fwd+bwd MiB: peak memory of the pass '
          'above the inputs; saved MiB: memory held after a forward with '
          'gradients (output + tensors autograd keeps for backward).')


if __name__ == '__main__':
    main()
