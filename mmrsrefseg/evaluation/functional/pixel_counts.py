# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Intersection, union and ground-truth area of one referring mask.

The only place where pixels are counted: :class:`RefSegIoUMetric` (every
evaluated sample) and :class:`RefSegLocalVisualizer` (the IoU it writes on
a picture) both call :func:`count_pixels`, so a picture's IoU is the one
in the metric's report.

One counting path, on the CPU, in one thread: numpy comparisons on uint8 /
bool arrays and ``cv2.countNonZero``. torch's reductions (the alternative)
run on torch's intra-op thread pool, which stalls whenever the CPU is
shared with dataloader workers or other jobs: with torch's two threads on a
2-core machine, ``tools/analysis_tools/benchmark_metric.py`` (3,481 masks of
800x800) took 3.4-49 s at load 3 and 162-240 s at load 8, against 2.3-2.5 s
and 6.6-7.5 s with this path. Masks on a GPU are copied to the CPU first
(one device-to-host copy per mask: 2.6 MB for a float32 800x800
prediction, 5.1 MB for an int64 ground truth); no measurement has shown
that counting on the GPU would pay for a second path that must agree with
this one bit for bit.
"""
from functools import lru_cache
from typing import NamedTuple, Optional, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

Mask = Union[np.ndarray, Tensor]


class PixelCounts(NamedTuple):
    """Pixel counts of one sample.

    Attributes:
        intersection (int): I = |pred AND gt| in pixels.
        union (int): U = |pred OR gt| in pixels.
        gt_area (int): Ground-truth pixels equal to 1, at the original
            resolution (whatever ``eval_size``).
    """
    intersection: int
    union: int
    gt_area: int


def _count_nonzero(mask: np.ndarray) -> int:
    """Number of non-zero elements of a C-contiguous 2-D bool / uint8 array.

    ``cv2.countNonZero`` (single thread, about 1.4x faster than
    ``np.count_nonzero`` on 800x800 masks), numpy for what OpenCV does not
    take (empty masks, more than 2**31 - 1 elements).
    """
    if 0 < mask.size < 2**31:
        return cv2.countNonZero(mask.view(np.uint8))
    return int(np.count_nonzero(mask))


@lru_cache(maxsize=64)
def _nearest_exact_index(in_size: int, out_size: int) -> np.ndarray:
    """Source indices of torch's ``'nearest-exact'`` resize along one axis.

    Obtained by resizing the ramp ``0 .. in_size - 1`` (exact in float32)
    with ``F.interpolate`` itself, so the gather ``x[rows][:, cols]`` is
    bit-identical to ``F.interpolate(x, (h, w), mode='nearest-exact')``,
    which samples pixel centres like ``PIL.Image.resize(..., NEAREST)``.

    Args:
        in_size (int): Input length in pixels.
        out_size (int): Output length in pixels.

    Returns:
        np.ndarray: int64 indices in [0, in_size) of shape (out_size, ).
    """
    ramp = torch.arange(in_size, dtype=torch.float32).view(1, 1, in_size)
    index = F.interpolate(ramp, size=out_size, mode='nearest-exact')
    return index.view(-1).to(torch.int64).numpy()


def as_2d_array(mask: Mask, name: str = 'mask') -> np.ndarray:
    """A mask as a C-contiguous (H, W) numpy array on the CPU.

    Tensors are detached and copied from their device; float16 / bfloat16
    become float32 (exactly; numpy has no bfloat16).

    Args:
        mask (np.ndarray | Tensor): Array of shape (H, W) or (1, H, W).
        name (str): Name used in error messages. Defaults to 'mask'.

    Returns:
        np.ndarray: The (H, W) array (a view when no copy is needed).

    Raises:
        ValueError: If ``mask`` is not an array / tensor of shape (H, W) or
            (1, H, W).
    """
    if isinstance(mask, Tensor):
        mask = mask.detach()
        if mask.device.type != 'cpu':
            mask = mask.cpu()
        if mask.dtype in (torch.float16, torch.bfloat16):
            mask = mask.float()
        mask = mask.numpy()
    elif not isinstance(mask, np.ndarray):
        raise ValueError(f'{name} must be a numpy array or a torch.Tensor, '
                         f'got {type(mask).__name__}')
    if mask.ndim == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.ndim != 2:
        raise ValueError(f'{name} must have shape (1, H, W) or (H, W), got '
                         f'{mask.shape}')
    return np.ascontiguousarray(mask)


def count_pixels(pred: Mask,
                 gt: Mask,
                 ignore_index: Optional[int] = 255,
                 eval_size: Optional[Tuple[int, int]] = None) -> PixelCounts:
    """Count I, U and the ground-truth area of a binary prediction.

    Ground-truth pixels equal to ``ignore_index`` are removed from both
    masks. With ``eval_size`` both masks are first resized to ``(h, w)``
    by nearest-neighbour sampling of pixel centres (torch's
    ``'nearest-exact'``, PIL's ``NEAREST``: the LAVT / RMSIN 480x480
    protocol), the ignored pixels after the resize. Values are checked
    without a comparison pass per value: the ground truth (range-checked,
    then cast to uint8) must split into #0 + #1 + #ignore = H*W pixels, and
    the prediction into #0 + #1 = H*W (exact for any real dtype; NaN and
    fractions fail it).

    Args:
        pred (np.ndarray | Tensor): Prediction of shape (H, W) or
            (1, H, W), any real dtype, values 0/1 (a tensor may live on any
            device).
        gt (np.ndarray | Tensor): Ground truth of the same shape, integer
            or bool, values 0/1 and ``ignore_index``.
        ignore_index (int, optional): Ground-truth value in [2, 255] that is
            not evaluated; None means the ground truth holds only 0/1.
            Defaults to 255.
        eval_size (tuple[int, int], optional): ``(h, w)`` in pixels to
            count at; None counts at the masks' own size. Defaults to None.

    Returns:
        PixelCounts: ``intersection``, ``union`` (pixels, at ``eval_size``
        when given) and ``gt_area`` (pixels equal to 1 at the original
        resolution).

    Raises:
        ValueError: If a mask is not (H, W) / (1, H, W), the shapes differ,
            the ground
            truth is not integer / bool or holds other values than 0, 1 and
            ``ignore_index``, or the prediction is not a real 0/1 mask.
    """
    pred_np = as_2d_array(pred, 'pred_sem_seg')
    gt_np = as_2d_array(gt, 'gt_sem_seg')
    if pred_np.shape != gt_np.shape:
        raise ValueError(f'prediction shape {pred_np.shape} != ground-truth '
                         f'shape {gt_np.shape}')
    if gt_np.dtype.kind not in 'biu':
        raise ValueError('gt_sem_seg must be an integer/bool mask, got '
                         f'{gt_np.dtype}')
    if pred_np.dtype.kind not in 'biuf':
        raise ValueError('pred_sem_seg must be a real 0/1 mask, got '
                         f'{pred_np.dtype}')
    numel = gt_np.size

    # ground truth: uint8 after a range check (the cast must not wrap,
    # e.g. 256 -> 0 or -1 -> 255)
    if gt_np.dtype.kind == 'b' or gt_np.dtype == np.uint8:
        in_range = True
    elif gt_np.dtype.itemsize == 1:  # int8
        in_range = bool(gt_np.min() >= 0)
    else:  # negatives are huge in the unsigned view
        in_range = bool(gt_np.view(f'u{gt_np.dtype.itemsize}').max() <= 255)
    gt8 = gt_np.view(np.uint8) if gt_np.dtype.kind == 'b' else \
        gt_np.astype(np.uint8, copy=False)
    g = gt8 == 1
    gt_one = _count_nonzero(g)
    gt_nonzero = _count_nonzero(gt8)
    ign, gt_ign = None, 0
    if ignore_index is not None:
        ign = gt8 == ignore_index
        gt_ign = _count_nonzero(ign)
        if gt_ign == 0:
            ign = None
    if not in_range or gt_one + (numel - gt_nonzero) + gt_ign != numel:
        raise ValueError(
            f'gt_sem_seg must hold only 0, 1 and ignore_index={ignore_index},'
            f' got values {np.unique(gt_np)[:10].tolist()}')

    if pred_np.dtype.kind == 'b':
        p = pred_np
        pred_area = _count_nonzero(p)
    else:
        p = pred_np == 1
        pred_area = _count_nonzero(p)
        if pred_area + _count_nonzero(pred_np == 0) != numel:
            values = np.unique(pred_np).tolist()
            raise ValueError(
                'pred_sem_seg must be a binary 0/1 mask, got values in '
                f'[{min(values)}, {max(values)}], e.g. {values[:5]} '
                '(threshold the logits first)')

    if eval_size is not None:
        rows = _nearest_exact_index(gt8.shape[0], eval_size[0])
        cols = _nearest_exact_index(gt8.shape[1], eval_size[1])
        p = p[rows][:, cols]
        gt8_small = gt8[rows][:, cols]
        g = gt8_small == 1
        if ign is not None:
            ign = gt8_small == ignore_index
        pred_area = _count_nonzero(p)
        gt_area = _count_nonzero(g)
    else:
        gt_area = gt_one
    if ign is not None:  # g (gt == 1) already excludes ignored pixels
        pred_area -= _count_nonzero(p & ign)
    inter = _count_nonzero(p & g)
    return PixelCounts(inter, pred_area + gt_area - inter, gt_one)
