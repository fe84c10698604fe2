# Copyright (c) mmrsrefseg contributors. All rights reserved.
import json
import logging
import os.path as osp
from functools import lru_cache
from numbers import Integral, Real
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from mmengine.dist import is_main_process
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from mmengine.utils import mkdir_or_exist
from mmseg.registry import METRICS
from prettytable import PrettyTable
from torch import Tensor

from ..functional import (SIZE_NAMES, check_size_thresholds, refseg_scores,
                          sample_ious, size_bounds, size_label)

#: Metainfo keys every sample must carry; copied into its record.
_ID_KEYS = ('ref_id', 'image_id', 'text')
#: Metainfo keys copied into the record when present (None otherwise).
_OPTIONAL_KEYS = ('sent_id', 'category_id')
#: Top-level keys of the JSON report that ``output_meta`` must not use.
_RESERVED_KEYS = ('summary', 'by_category', 'by_size', 'samples')


def _to_builtin(value: Any) -> Any:
    """Turn numpy / 0-d tensor scalars into Python scalars (JSON-safe)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Tensor) and value.numel() == 1:
        return value.item()
    return value


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
    bit-identical to ``F.interpolate(x, (h, w), mode='nearest-exact')``.

    Args:
        in_size (int): Input length in pixels.
        out_size (int): Output length in pixels.

    Returns:
        np.ndarray: int64 indices in [0, in_size) of shape (out_size, ).
    """
    ramp = torch.arange(in_size, dtype=torch.float32).view(1, 1, in_size)
    index = F.interpolate(ramp, size=out_size, mode='nearest-exact')
    return index.view(-1).to(torch.int64).numpy()


@METRICS.register_module()
class RefSegIoUMetric(BaseMetric):
    """oIoU, mIoU and Pr@X for referring (binary) segmentation.

    For every sample the intersection ``I = |pred AND gt|`` and the union
    ``U = |pred OR gt|`` (pixel counts) are computed; only these two
    integers, the ground-truth area and the sample's ids are kept in
    ``self.results`` (never the masks), so distributed collection is cheap.
    Over the split:

    - ``oIoU`` (overall / cumulative IoU, mmdet's ``cIoU``) = ΣI / ΣU;
    - ``mIoU`` (mean per-sample IoU, a.k.a. gIoU) = mean of I / U;
    - ``Pr@X`` = share of samples whose IoU reaches the threshold X.

    All values are percentages in [0, 100], rounded to 2 decimals like
    mmseg's ``IoUMetric``. Definitions follow the RRSIS literature (LAVT,
    CVPR'22; RMSIN, CVPR'24; RSRefSeg, arXiv:2501.06809); oIoU / mIoU agree
    with mmdet's ``RefSegMetric`` (mmdet/evaluation/metrics/refseg_metric.py,
    Apache-2.0) whenever no sample has an empty union.

    Breakdown (``breakdown=True``): the same metrics per category and per
    object size are logged as tables and written into ``output_file``; the
    returned (and runner-logged) keys stay the overall ones.

    - Per category: a sample's ``category_id`` (metainfo, RRSIS-D: 0..19)
      indexes ``dataset_meta['classes']`` (set by the runner from the
      dataset's metainfo; without it a category is named
      ``'category {id}'``). Samples without ``category_id`` (datasets
      without categories) are left out of this table only.
    - Per size: the ground-truth area A (pixels equal to 1, at the original
      resolution, whatever ``eval_size``) gives ``small`` (A < t0),
      ``medium`` (t0 <= A < t1) or ``large`` (A >= t1), with
      ``(t0, t1) = size_thresholds`` (COCO's 32², 96² by default).

    Evaluation resolution (``eval_size``):

    - ``None`` (default, the RSRefSeg protocol): I and U are counted at the
      original image resolution, on the masks as given.
    - ``(h, w)``, e.g. ``(480, 480)`` (the LAVT / RMSIN protocol): the
      prediction and the ground truth are both resized to ``(h, w)`` with
      nearest-neighbour interpolation before counting. The resize samples
      pixel centres (``torch`` ``mode='nearest-exact'``), which is what
      ``PIL.Image.resize(..., NEAREST)`` does and thus what LAVT/RMSIN apply
      to their ground truth. LAVT/RMSIN also *predict* at 480x480, whereas
      here the prediction made at the original resolution is downsampled,
      so numbers can differ slightly from a model run at 480x480 input.

    Pr@X rule: by default a sample counts when ``IoU >= X`` (LAVT / RMSIN);
    ``strict_pr=True`` counts ``IoU > X`` (the RSRefSeg reference code).
    A sample's IoU is one correctly rounded float64 division of two
    integers, so I = 1, U = 2 gives exactly 0.5 (and 3 / 5 == 0.6): such a
    sample counts for Pr@0.5 only when ``strict_pr=False``.

    Empty union (U = 0: an empty prediction on an empty / fully ignored
    ground truth): its IoU is ``empty_iou``. The default 1.0 scores a
    correct empty prediction as perfect; ``empty_iou=0.0`` reproduces RMSIN
    (which counts such samples as 0). RRSIS-D has no empty masks, so the
    choice does not change its numbers. When ΣU = 0 over the whole split
    (or a category / size group), oIoU is ``empty_iou`` too. No metric is
    ever NaN.

    Ignore label: ground-truth pixels equal to ``ignore_index`` are removed
    from both prediction and ground truth before counting (after the
    resize for the 480x480 protocol).

    Speed: masks on the CPU are counted in one thread (numpy comparisons
    on uint8 / bool, ``cv2.countNonZero``), so the metric never waits on
    torch's intra-op threads, which stall when the CPU is shared (e.g. with
    dataloader workers); masks on a GPU are counted there with torch and
    come back in one transfer. Both give the same integers (tested against
    a plain reference).

    Distributed evaluation: ``process`` appends exactly one record per
    sample, in dataloader order, so mmengine's ``collect_results``
    interleaves the ranks' records back into dataset order and truncates
    the samples that ``DefaultSampler`` repeated to pad the last batch;
    every sample is counted exactly once.

    Args:
        eval_size (int | tuple[int, int], optional): ``(h, w)`` in pixels to
            which prediction and ground truth are resized before counting;
            an int means a square size. ``None`` evaluates at the original
            resolution. Defaults to None.
        pr_thresholds (Sequence[float]): IoU thresholds X in [0, 1] of the
            reported ``Pr@X`` keys (key text is ``f'Pr@{X}'``, e.g.
            ``'Pr@0.5'``). Defaults to (0.5, 0.6, 0.7, 0.8, 0.9).
        strict_pr (bool): Count ``IoU > X`` instead of ``IoU >= X``.
            Defaults to False.
        empty_iou (float): IoU in [0, 1] given to a sample whose union is
            empty (and oIoU when ΣU = 0). Defaults to 1.0.
        ignore_index (int, optional): Ground-truth value in [2, 255]
            excluded from evaluation; None means the ground truth must be
            strictly 0/1. Defaults to 255.
        breakdown (bool): Log the per-category and per-size tables and write
            them into ``output_file``. Defaults to True.
        size_thresholds (tuple[float, float]): Ground-truth areas
            ``(t0, t1)`` in pixels, 0 < t0 < t1, separating small / medium /
            large objects. Defaults to ``(32**2, 96**2)`` (COCO).
        output_file (str, optional): When set, rank 0 writes a JSON file
            ``{**output_meta, "summary": {<metrics>, "num_samples",
            "protocol", "pr_rule", "empty_iou", "size_thresholds"},
            "by_category": [{"category_id", "category", "num_samples",
            <metrics>}, ...], "by_size": [{"size", "min_area", "max_area",
            "num_samples", <metrics>}, ...], "samples": [{"ref_id",
            "sent_id", "image_id", "text", "category_id", "category",
            "gt_area", "size", "intersection", "union", "iou"}, ...]}``
            (``by_*`` only with ``breakdown``, groups without samples left
            out, ``max_area`` exclusive and null for ``large``; ``iou`` in
            [0, 1]; ``sent_id`` / ``category_id`` / ``category`` null when
            the sample has none; samples in dataset order). Defaults to None.
        output_meta (dict, optional): Extra top-level JSON keys for
            ``output_file`` (e.g. ``checkpoint``, ``config``, ``split``).
            Must not contain ``summary``, ``by_category``, ``by_size`` or
            ``samples``. Defaults to None.
        collect_device (str): ``'cpu'`` or ``'gpu'``, how ranks exchange
            results (see ``BaseMetric``). Defaults to 'cpu'.
        collect_dir (str, optional): Shared directory for ``'cpu'``
            collection; None lets mmengine create one. Defaults to None.
        prefix (str, optional): Prefix of the metric keys. Defaults to None
            (keys are ``oIoU``, ``mIoU``, ``Pr@0.5``, ... as in mmseg).

    Raises:
        ValueError: On an invalid argument (listed per argument above).

    Examples:
        >>> val_evaluator = dict(type='RefSegIoUMetric')
        >>> rmsin_protocol = dict(type='RefSegIoUMetric',
        ...                       eval_size=(480, 480), empty_iou=0.0)
        >>> overall_only = dict(type='RefSegIoUMetric', breakdown=False)
    """

    def __init__(self,
                 eval_size: Optional[Union[int, Tuple[int, int]]] = None,
                 pr_thresholds: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9),
                 strict_pr: bool = False,
                 empty_iou: float = 1.0,
                 ignore_index: Optional[int] = 255,
                 breakdown: bool = True,
                 size_thresholds: Tuple[Real, Real] = (32**2, 96**2),
                 output_file: Optional[str] = None,
                 output_meta: Optional[dict] = None,
                 collect_device: str = 'cpu',
                 collect_dir: Optional[str] = None,
                 prefix: Optional[str] = None) -> None:
        super().__init__(
            collect_device=collect_device,
            prefix=prefix,
            collect_dir=collect_dir)
        self.eval_size = self._check_eval_size(eval_size)
        self.pr_thresholds = tuple(float(t) for t in pr_thresholds)
        for thr in self.pr_thresholds:
            if not 0.0 <= thr <= 1.0:
                raise ValueError('RefSegIoUMetric: every pr_thresholds value '
                                 f'must lie in [0, 1], got {thr}')
        if len(set(self.pr_thresholds)) != len(self.pr_thresholds):
            raise ValueError('RefSegIoUMetric: pr_thresholds has duplicates: '
                             f'{self.pr_thresholds}')
        self.strict_pr = bool(strict_pr)
        if not 0.0 <= float(empty_iou) <= 1.0:
            raise ValueError('RefSegIoUMetric: empty_iou must lie in [0, 1], '
                             f'got {empty_iou}')
        self.empty_iou = float(empty_iou)
        if ignore_index is not None and (not isinstance(
                ignore_index, Integral) or not 2 <= ignore_index <= 255):
            raise ValueError('RefSegIoUMetric: ignore_index must be None or '
                             f'an int in [2, 255], got {ignore_index}')
        self.ignore_index = ignore_index
        self.breakdown = bool(breakdown)
        try:
            self.size_thresholds = check_size_thresholds(size_thresholds)
        except ValueError as err:
            raise ValueError(f'RefSegIoUMetric: {err}') from None
        self.output_file = output_file
        self.output_meta = dict(output_meta or {})
        clash = set(_RESERVED_KEYS) & set(self.output_meta)
        if clash:
            raise ValueError('RefSegIoUMetric: output_meta must not contain '
                             f'the reserved keys {sorted(clash)}')

    @staticmethod
    def _check_eval_size(
        eval_size: Optional[Union[int, Sequence[int]]]
    ) -> Optional[Tuple[int, int]]:
        """Validate ``eval_size`` and return it as ``(h, w)`` or None."""
        if eval_size is None:
            return None
        if isinstance(eval_size, Integral):
            eval_size = (eval_size, eval_size)
        size = tuple(eval_size)
        if len(size) != 2 or not all(
                isinstance(s, Integral) and s > 0 for s in size):
            raise ValueError('RefSegIoUMetric: eval_size must be None, a '
                             'positive int or a pair of positive ints (h, w), '
                             f'got {eval_size}')
        return (int(size[0]), int(size[1]))

    @property
    def protocol(self) -> str:
        """str: ``'original resolution'`` or ``'{h}x{w}'``."""
        if self.eval_size is None:
            return 'original resolution'
        return f'{self.eval_size[0]}x{self.eval_size[1]}'

    @property
    def pr_rule(self) -> str:
        """str: ``'IoU > X'`` (strict) or ``'IoU >= X'``."""
        return 'IoU > X' if self.strict_pr else 'IoU >= X'

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Count intersection and union of every sample in a batch.

        Args:
            data_batch (Any): A batch from the dataloader (unused).
            data_samples (Sequence[dict]): ``SegDataSample.to_dict()`` outputs
                of a segmentor's ``predict``. Each holds
                ``pred_sem_seg['data']`` (Tensor of shape (1, H, W) or
                (H, W), any real dtype, values 0/1), ``gt_sem_seg['data']``
                (same shape, integer or bool, values 0/1 or
                ``ignore_index``), and the metainfo keys ``ref_id``,
                ``image_id``, ``text`` (copied into the record);
                ``sent_id`` and ``category_id`` (int) are copied when
                present; ``ori_shape`` (checked against the mask size when
                present) and ``img_path`` (used in error messages) are
                optional.

        Raises:
            KeyError: If a sample misses a mask or an id key.
            ValueError: If masks are not 2-D/(1, H, W), their shapes differ
                from each other or from ``ori_shape``, they hold values
                other than 0/1 (and ``ignore_index`` for the ground truth),
                or ``category_id`` is not an int indexing
                ``dataset_meta['classes']``.
        """
        for data_sample in data_samples:
            self.results.append(self._process_one(data_sample))

    def _process_one(self, data_sample: dict) -> Dict[str, Any]:
        """Return the record ``{ref_id, image_id, text, sent_id,
        category_id, intersection, union, gt_area}`` of one sample (see
        :meth:`process`)."""
        where = self._describe(data_sample)
        for key in ('pred_sem_seg', 'gt_sem_seg') + _ID_KEYS:
            if key not in data_sample:
                raise KeyError(f'RefSegIoUMetric: sample {where} has no '
                               f'"{key}"; got keys {sorted(data_sample)}')
        pred = self._as_2d(data_sample['pred_sem_seg']['data'], 'pred', where)
        gt = self._as_2d(data_sample['gt_sem_seg']['data'], 'gt', where)
        if pred.shape != gt.shape:
            raise ValueError(f'RefSegIoUMetric: sample {where}: prediction '
                             f'shape {tuple(pred.shape)} != ground-truth '
                             f'shape {tuple(gt.shape)}')
        ori_shape = data_sample.get('ori_shape')
        if ori_shape is not None and tuple(ori_shape[:2]) != tuple(gt.shape):
            raise ValueError(f'RefSegIoUMetric: sample {where}: masks of '
                             f'shape {tuple(gt.shape)} are not at the '
                             f'original resolution ori_shape={ori_shape}')
        if gt.dtype.is_floating_point or gt.dtype.is_complex:
            raise ValueError(f'RefSegIoUMetric: sample {where}: gt_sem_seg '
                             f'must be an integer/bool mask, got {gt.dtype}')
        if pred.dtype.is_complex:
            raise ValueError(f'RefSegIoUMetric: sample {where}: pred_sem_seg '
                             f'must be a real 0/1 mask, got {pred.dtype}')
        record = {k: _to_builtin(data_sample[k]) for k in _ID_KEYS}
        for key in _OPTIONAL_KEYS:
            record[key] = _to_builtin(data_sample.get(key))
        self._check_category(record['category_id'], where)

        pred, gt = pred.detach(), gt.detach().to(pred.device)
        if pred.device.type == 'cpu':
            stats = self._pixel_counts_numpy(pred, gt)
        else:
            stats = self._pixel_counts_torch(pred, gt)
        if not stats['gt_in_range'] or (stats['gt_one'] + stats['gt_zero'] +
                                        stats['gt_ign'] != gt.numel()):
            raise ValueError(
                f'RefSegIoUMetric: sample {where}: gt_sem_seg must hold only '
                f'0, 1 and ignore_index={self.ignore_index}, got values '
                f'{torch.unique(gt).tolist()[:10]}')
        if not stats['pred_binary']:
            values = torch.unique(pred).tolist()
            raise ValueError(
                f'RefSegIoUMetric: sample {where}: pred_sem_seg must be a '
                f'binary 0/1 mask, got values in [{min(values)}, '
                f'{max(values)}], e.g. {values[:5]} (threshold the logits '
                'first)')
        inter, p_area, g_area = stats['inter'], stats['pred'], stats['gt']
        record['intersection'] = int(inter)
        record['union'] = int(p_area + g_area - inter)
        record['gt_area'] = int(stats['gt_one'])
        return record

    def _check_category(self, category_id: Any, where: str) -> None:
        """Check that ``category_id`` is None or indexes the class names.

        Raises:
            ValueError: If it is not an int, or not in
                ``[0, len(dataset_meta['classes']))`` when classes are set.
        """
        if category_id is None:
            return
        if not isinstance(category_id, Integral) or isinstance(
                category_id, bool):
            raise ValueError(f'RefSegIoUMetric: sample {where}: category_id '
                             f'must be an int, got {category_id!r}')
        classes = (self.dataset_meta or {}).get('classes')
        if classes is not None and not 0 <= category_id < len(classes):
            raise ValueError(
                f'RefSegIoUMetric: sample {where}: category_id {category_id} '
                f'does not index the {len(classes)} classes of the '
                f'dataset metainfo ({", ".join(map(str, classes[:3]))}, ...)')

    def _pixel_counts_numpy(self, pred: Tensor, gt: Tensor) -> Dict[str, Any]:
        """Pixel counts of one sample on the CPU (single thread).

        Every comparison is a numpy ufunc on uint8 / bool arrays and every
        count a :func:`_count_nonzero`; only a ground truth wider than uint8
        is read once more for its range check (the maximum of its unsigned
        view, which also catches negative values) before the uint8 cast.
        The prediction is binary when ``#(pred == 1) + #(pred == 0) = H*W``,
        which is exact for any real dtype (NaN and fractions fail it).

        Args:
            pred (Tensor): CPU prediction of shape (H, W), real dtype.
            gt (Tensor): CPU ground truth of shape (H, W), integer or bool.

        Returns:
            dict: See :meth:`_pixel_counts_torch`.
        """
        numel = gt.numel()
        if gt.dtype == torch.bool:
            gt8 = np.ascontiguousarray(gt.numpy()).view(np.uint8)
            in_range = True
        else:
            gt_np = np.ascontiguousarray(gt.numpy())
            if gt_np.dtype == np.uint8:
                in_range = True
            elif gt_np.dtype.itemsize == 1:  # int8: -1 would cast to 255
                in_range = bool(gt_np.min() >= 0)
            else:  # negatives are huge in the unsigned view
                unsigned = gt_np.view(f'u{gt_np.dtype.itemsize}')
                in_range = bool(unsigned.max() <= 255)
            gt8 = gt_np.astype(np.uint8, copy=False)
        g = gt8 == 1
        gt_one = _count_nonzero(g)
        gt_nonzero = _count_nonzero(gt8)
        ign = None
        gt_ign = 0
        if self.ignore_index is not None:
            ign = gt8 == self.ignore_index
            gt_ign = _count_nonzero(ign)
            if gt_ign == 0:
                ign = None

        if pred.dtype == torch.bool:
            p = np.ascontiguousarray(pred.numpy())
            pred_area = _count_nonzero(p)
            pred_binary = True
        else:
            if pred.dtype.is_floating_point and pred.dtype not in (
                    torch.float32, torch.float64):
                pred = pred.float()  # exact for float16 / bfloat16
            pred_np = np.ascontiguousarray(pred.numpy())
            p = pred_np == 1
            pred_area = _count_nonzero(p)
            pred_binary = pred_area + _count_nonzero(pred_np == 0) == numel

        if self.eval_size is not None:
            rows = _nearest_exact_index(gt8.shape[0], self.eval_size[0])
            cols = _nearest_exact_index(gt8.shape[1], self.eval_size[1])
            p = p[rows][:, cols]
            g8_small = gt8[rows][:, cols]
            g = g8_small == 1
            ign = None
            if gt_ign > 0:
                ign = g8_small == self.ignore_index
            gt_area = _count_nonzero(g)
            pred_area = _count_nonzero(p)
        else:
            gt_area = gt_one
        if ign is not None:  # g (gt == 1) already excludes ignored pixels
            pred_area -= _count_nonzero(p & ign)
        return dict(
            gt_in_range=in_range,
            gt_one=gt_one,
            gt_zero=numel - gt_nonzero,
            gt_ign=gt_ign,
            pred_binary=bool(pred_binary),
            inter=_count_nonzero(p & g),
            pred=pred_area,
            gt=gt_area)

    def _pixel_counts_torch(self, pred: Tensor, gt: Tensor) -> Dict[str, Any]:
        """Pixel counts of one sample, computed with torch on its device.

        Used for masks on a GPU (CPU masks go to
        :meth:`_pixel_counts_numpy`, which gives the same integers). All
        reductions come back in one transfer; :meth:`_process_one`
        validates them afterwards. Values are checked without a comparison
        pass per value: the ground truth (range-checked, then cast to
        uint8) must split into #0 + #1 + #ignore = H*W pixels, and a
        prediction within [0, 1] whose sum equals its non-zero count holds
        only 0 and 1. Comparisons are written as uint8 bitwise ops
        (``logical_not(x ^ v)`` is ``x == v``).

        Args:
            pred (Tensor): Prediction of shape (H, W), real dtype.
            gt (Tensor): Ground truth of shape (H, W), integer or bool, on
                the device of ``pred``.

        Returns:
            dict: ``gt_in_range`` (bool, all values in [0, 255] before the
            uint8 cast), ``gt_one``, ``gt_zero``, ``gt_ign`` (int pixel
            counts of the values 1, 0 and ``ignore_index`` at the original
            resolution), ``pred_binary`` (bool, only 0/1 values), and
            ``inter``, ``pred``, ``gt`` (int I, |pred|, |gt| after ignore
            masking and resizing).
        """
        # float32 sums of 0/1 are exact below 2**24 pixels (and fast)
        acc = torch.float32 if gt.numel() < 2**24 else torch.float64

        def count(mask: Tensor) -> Tensor:
            return mask.view(torch.uint8).sum(dtype=acc)

        stats: Dict[str, Tensor] = {}
        if gt.dtype == torch.bool:
            gt8 = gt.view(torch.uint8)
        elif gt.dtype == torch.uint8:
            gt8 = gt
        else:  # the uint8 cast must not wrap (e.g. 256 -> 0)
            gt_min, gt_max = torch.aminmax(gt)
            stats['gt_out'] = (gt_min < 0) | (gt_max > 255)
            gt8 = gt.to(torch.uint8)
        g = torch.logical_not(gt8 ^ 1)
        stats['gt_one'] = count(g)
        stats['gt_zero'] = count(torch.logical_not(gt8))
        ign = None
        if self.ignore_index is not None:
            ign = torch.logical_not(gt8 ^ self.ignore_index)
            stats['gt_ign'] = count(ign)
        else:
            stats['gt_ign'] = torch.zeros((), dtype=acc, device=gt.device)

        p = pred if pred.dtype == torch.bool else pred.bool()
        if pred.dtype != torch.bool:
            pred_min, pred_max = torch.aminmax(pred)
            bad = (pred_min < 0) | (pred_max > 1)
            if pred.dtype.is_floating_point:
                bad = bad | (pred.sum(dtype=acc) != count(p))
            stats['pred_bad'] = bad

        if self.eval_size is not None:
            p, g, ign = self._resize(p, g, ign)
            stats['gt'] = count(g)
        else:
            stats['gt'] = stats['gt_one']
        if ign is not None:
            p = p & ~ign  # g (gt == 1) already excludes ignored pixels
        stats['inter'] = count(p & g)
        stats['pred'] = count(p)
        values = dict(
            zip(stats,
                torch.stack([v.to(acc) for v in stats.values()]).tolist()))
        result = {k: int(values[k]) for k in ('gt_one', 'gt_zero', 'gt_ign')}
        result.update(
            gt_in_range=not values.get('gt_out', 0.0),
            pred_binary=not values.get('pred_bad', 0.0),
            inter=int(values['inter']),
            pred=int(values['pred']),
            gt=int(values['gt']))
        return result

    def _resize(
            self, pred: Tensor, gt: Tensor, ignore: Optional[Tensor]
    ) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        """Nearest-neighbour (pixel-centre) resize to ``self.eval_size``.

        Args:
            pred (Tensor): Bool prediction of shape (H, W).
            gt (Tensor): Bool foreground of shape (H, W).
            ignore (Tensor, optional): Bool ignore mask of shape (H, W).

        Returns:
            tuple[Tensor, Tensor, Tensor | None]: The three bool masks of
            shape ``eval_size``.
        """
        # Encode gt/ignore in one channel (0 bg, 1 fg, 2 ignore) so a
        # single uint8 interpolation resizes everything consistently.
        code = gt.to(torch.uint8)
        if ignore is not None:
            code = code + ignore.to(torch.uint8) * 2
        stacked = torch.stack([pred.to(torch.uint8), code])[None]
        resized = F.interpolate(
            stacked, size=self.eval_size, mode='nearest-exact')[0]
        ignore_out = resized[1] == 2 if ignore is not None else None
        return resized[0] == 1, resized[1] == 1, ignore_out

    @staticmethod
    def _as_2d(mask: Any, name: str, where: str) -> Tensor:
        """Check a (1, H, W) or (H, W) tensor and return it as (H, W)."""
        if not isinstance(mask, Tensor):
            raise ValueError(f'RefSegIoUMetric: sample {where}: {name} mask '
                             f'must be a torch.Tensor, got {type(mask)}')
        if mask.dim() == 3 and mask.shape[0] == 1:
            mask = mask[0]
        if mask.dim() != 2:
            raise ValueError(f'RefSegIoUMetric: sample {where}: {name} mask '
                             'must have shape (1, H, W) or (H, W), got '
                             f'{tuple(mask.shape)}')
        return mask

    @staticmethod
    def _describe(data_sample: dict) -> str:
        """Identify a sample in error messages by ref id and image path."""
        return (f'ref_id={data_sample.get("ref_id")!r} '
                f'img_path={data_sample.get("img_path")!r}')

    def category_name(self, category_id: Optional[int]) -> Optional[str]:
        """Name of a category id.

        Args:
            category_id (int, optional): Index into
                ``dataset_meta['classes']``.

        Returns:
            str | None: The class name, ``'category {id}'`` when the
            dataset metainfo has no ``classes``, None for None.
        """
        if category_id is None:
            return None
        classes = (self.dataset_meta or {}).get('classes')
        if classes is None:
            return f'category {category_id}'
        return str(classes[category_id])

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Compute oIoU, mIoU and Pr@X (percent) from per-sample records.

        Logs a table (metrics, sample count, protocol) and, with
        ``breakdown``, the per-category and per-size tables; when
        ``output_file`` is set and this is rank 0, writes the JSON report.

        Args:
            results (list[dict]): Records from :meth:`process` (already
                collected from all ranks and truncated to the dataset size).

        Returns:
            dict[str, float]: ``oIoU``, ``mIoU`` and one ``Pr@X`` per
            threshold, in percent, rounded to 2 decimals (overall only).

        Raises:
            ValueError: If ``results`` is empty.
        """
        logger: MMLogger = MMLogger.get_current_instance()
        if len(results) == 0:
            raise ValueError('RefSegIoUMetric: no samples were evaluated; '
                             'check the dataloader and process()')
        inter = np.array([r['intersection'] for r in results],
                         dtype=np.float64)
        union = np.array([r['union'] for r in results], dtype=np.float64)
        metrics = self._scores(inter, union)

        table = PrettyTable(field_names=['Metric', 'Value'])
        table.align = 'l'
        for key, value in metrics.items():
            table.add_row([key, f'{value:.2f}'])
        table.add_row(['samples', len(results)])
        table.add_row(['protocol', self.protocol])
        table.add_row(['Pr rule', self.pr_rule])
        table.add_row(['empty IoU', self.empty_iou])
        print_log('referring segmentation results:', logger)
        print_log('\n' + table.get_string(), logger=logger)

        sizes = [
            size_label(r['gt_area'], self.size_thresholds) for r in results
        ]
        by_category: List[dict] = []
        by_size: List[dict] = []
        if self.breakdown:
            by_category = self._by_category(results, inter, union)
            by_size = self._by_size(sizes, inter, union)
            self._log_breakdown(by_category, by_size, results, logger)

        if self.output_file is not None and is_main_process():
            self._dump(metrics, results,
                       sample_ious(inter, union, self.empty_iou), sizes,
                       by_category, by_size)
            print_log(
                f'per-sample results written to {self.output_file}',
                logger=logger,
                level=logging.INFO)
        return metrics

    def _scores(self, inter: np.ndarray, union: np.ndarray) -> dict:
        """oIoU / mIoU / Pr@X (percent) of the given samples' I and U."""
        return refseg_scores(inter, union, self.pr_thresholds, self.strict_pr,
                             self.empty_iou)

    def _by_category(self, results: List[dict], inter: np.ndarray,
                     union: np.ndarray) -> List[dict]:
        """Rows ``{category_id, category, num_samples, <metrics>}`` of the
        categories that have samples, by category id."""
        groups: Dict[int, List[int]] = {}
        for i, record in enumerate(results):
            if record['category_id'] is not None:
                groups.setdefault(record['category_id'], []).append(i)
        rows = []
        for category_id in sorted(groups):
            index = groups[category_id]
            rows.append(
                dict(
                    category_id=category_id,
                    category=self.category_name(category_id),
                    num_samples=len(index),
                    **self._scores(inter[index], union[index])))
        return rows

    def _by_size(self, sizes: List[str], inter: np.ndarray,
                 union: np.ndarray) -> List[dict]:
        """Rows ``{size, min_area, max_area, num_samples, <metrics>}`` of
        the size bins that have samples, small to large."""
        labels = np.array(sizes)
        rows = []
        for name in SIZE_NAMES:
            index = np.flatnonzero(labels == name)
            if index.size == 0:
                continue
            low, high = size_bounds(name, self.size_thresholds)
            rows.append(
                dict(
                    size=name,
                    min_area=low,
                    max_area=high,
                    num_samples=int(index.size),
                    **self._scores(inter[index], union[index])))
        return rows

    def _log_breakdown(self, by_category: List[dict], by_size: List[dict],
                       results: List[dict], logger: MMLogger) -> None:
        """Log the per-category and per-size tables."""
        keys = ['oIoU', 'mIoU'] + [f'Pr@{t}' for t in self.pr_thresholds]
        missing = sum(r['category_id'] is None for r in results)
        if by_category:
            table = PrettyTable(field_names=['Category', 'id', 'samples'] +
                                keys)
            table.align = 'r'
            table.align['Category'] = 'l'
            for row in by_category:
                table.add_row(
                    [row['category'], row['category_id'], row['num_samples']] +
                    [f'{row[k]:.2f}' for k in keys])
            print_log('per-category results:', logger)
            print_log('\n' + table.get_string(), logger=logger)
        if missing:
            print_log(
                f'{missing} of {len(results)} samples have no category_id '
                'and are left out of the per-category table (counted overall '
                'and per size)',
                logger=logger)
        table = PrettyTable(field_names=['Size', 'GT area (px)', 'samples'] +
                            keys)
        table.align = 'r'
        table.align['Size'] = 'l'
        for row in by_size:
            low, high = row['min_area'], row['max_area']
            area = f'>= {low}' if high is None else f'[{low}, {high})'
            table.add_row([row['size'], area, row['num_samples']] +
                          [f'{row[k]:.2f}' for k in keys])
        print_log(
            'per-size results (ground-truth area at the original '
            'resolution):', logger)
        print_log('\n' + table.get_string(), logger=logger)

    def _dump(self, metrics: Dict[str, float], results: List[dict],
              iou: np.ndarray, sizes: List[str], by_category: List[dict],
              by_size: List[dict]) -> None:
        """Write the JSON report described in the class docstring."""
        summary = dict(metrics)
        summary.update(
            num_samples=len(results),
            protocol=self.protocol,
            pr_rule=self.pr_rule,
            empty_iou=self.empty_iou,
            size_thresholds=list(self.size_thresholds))
        names = {
            cid: self.category_name(cid)
            for cid in {r['category_id']
                        for r in results}
        }
        samples = [
            dict(
                ref_id=r['ref_id'],
                sent_id=r['sent_id'],
                image_id=r['image_id'],
                text=r['text'],
                category_id=r['category_id'],
                category=names[r['category_id']],
                gt_area=r['gt_area'],
                size=size,
                intersection=r['intersection'],
                union=r['union'],
                iou=float(v)) for r, v, size in zip(results, iou, sizes)
        ]
        report = dict(self.output_meta)
        report['summary'] = summary
        if self.breakdown:
            report.update(by_category=by_category, by_size=by_size)
        report['samples'] = samples
        out_dir = osp.dirname(osp.abspath(self.output_file))
        mkdir_or_exist(out_dir)
        with open(self.output_file, 'w', encoding='utf-8') as f:
            json.dump(report, f, indent=1, ensure_ascii=False)
