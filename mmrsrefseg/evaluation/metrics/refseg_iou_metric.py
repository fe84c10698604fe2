# Copyright (c) mmrsrefseg contributors. All rights reserved.
import json
import logging
import os.path as osp
from collections import OrderedDict
from numbers import Integral
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

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

#: Metainfo keys copied from every sample into its per-sample record.
_ID_KEYS = ('ref_id', 'image_id', 'text')


def _to_builtin(value: Any) -> Any:
    """Turn numpy / 0-d tensor scalars into Python scalars (JSON-safe)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Tensor) and value.numel() == 1:
        return value.item()
    return value


@METRICS.register_module()
class RefSegIoUMetric(BaseMetric):
    """oIoU, mIoU and Pr@X for referring (binary) segmentation.

    For every sample the intersection ``I = |pred AND gt|`` and the union
    ``U = |pred OR gt|`` (pixel counts) are computed; only these two
    integers and the sample's ids are kept in ``self.results`` (never the
    masks), so distributed collection is cheap. Over the split:

    - ``oIoU`` (overall / cumulative IoU, mmdet's ``cIoU``) = ΣI / ΣU;
    - ``mIoU`` (mean per-sample IoU, a.k.a. gIoU) = mean of I / U;
    - ``Pr@X`` = share of samples whose IoU reaches the threshold X.

    All values are percentages in [0, 100], rounded to 2 decimals like
    mmseg's ``IoUMetric``. Definitions follow the RRSIS literature (LAVT,
    CVPR'22; RMSIN, CVPR'24; RSRefSeg, arXiv:2501.06809); oIoU / mIoU agree
    with mmdet's ``RefSegMetric`` (mmdet/evaluation/metrics/refseg_metric.py,
    Apache-2.0) whenever no sample has an empty union.

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
    choice does not change its numbers. When ΣU = 0 over the whole split,
    oIoU is ``empty_iou`` too. No metric is ever NaN.

    Ignore label: ground-truth pixels equal to ``ignore_index`` are removed
    from both prediction and ground truth before counting (after the
    resize for the 480x480 protocol).

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
        output_file (str, optional): When set, rank 0 writes a JSON file
            ``{**output_meta, "summary": {<metrics>, "num_samples",
            "protocol", "pr_rule", "empty_iou"}, "samples": [{"ref_id",
            "image_id", "text", "intersection", "union", "iou"}, ...]}``
            (``iou`` in [0, 1]; samples in dataset order). Defaults to None.
        output_meta (dict, optional): Extra top-level JSON keys for
            ``output_file`` (e.g. ``checkpoint``, ``config``, ``split``).
            Must not contain ``summary`` or ``samples``. Defaults to None.
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
    """

    def __init__(self,
                 eval_size: Optional[Union[int, Tuple[int, int]]] = None,
                 pr_thresholds: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9),
                 strict_pr: bool = False,
                 empty_iou: float = 1.0,
                 ignore_index: Optional[int] = 255,
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
        self.output_file = output_file
        self.output_meta = dict(output_meta or {})
        clash = {'summary', 'samples'} & set(self.output_meta)
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
                (H, W), any dtype, values 0/1), ``gt_sem_seg['data']``
                (same shape, integer or bool, values 0/1 or
                ``ignore_index``), and the metainfo keys ``ref_id``,
                ``image_id``, ``text`` (copied into the record); ``ori_shape``
                (checked against the mask size when present) and
                ``img_path`` (used in error messages) are optional.

        Raises:
            KeyError: If a sample misses a mask or an id key.
            ValueError: If masks are not 2-D/(1, H, W), their shapes differ
                from each other or from ``ori_shape``, or they hold values
                other than 0/1 (and ``ignore_index`` for the ground truth).
        """
        for data_sample in data_samples:
            self.results.append(self._process_one(data_sample))

    def _process_one(self, data_sample: dict) -> Dict[str, Any]:
        """Return the record ``{ref_id, image_id, text, intersection,
        union}`` of one sample (see :meth:`process`)."""
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
        gt = gt.to(pred.device)
        stats = self._pixel_counts(pred, gt)
        numel = gt.numel()
        if 'gt_min' in stats and (stats['gt_min'] < 0
                                  or stats['gt_max'] > 255):
            raise ValueError(
                f'RefSegIoUMetric: sample {where}: gt_sem_seg must hold only '
                f'0, 1 and ignore_index={self.ignore_index}, got values in '
                f'[{stats["gt_min"]}, {stats["gt_max"]}]')
        if stats['gt_one'] + stats['gt_zero'] + stats['gt_ign'] != numel:
            raise ValueError(
                f'RefSegIoUMetric: sample {where}: gt_sem_seg must hold only '
                f'0, 1 and ignore_index={self.ignore_index}, got values '
                f'{torch.unique(gt).tolist()[:10]}')
        if 'pred_min' in stats and (
                stats['pred_min'] < 0 or stats['pred_max'] > 1
                or stats.get('pred_sum', 0) != stats.get('pred_count', 0)):
            raise ValueError(
                f'RefSegIoUMetric: sample {where}: pred_sem_seg must be a '
                f'binary 0/1 mask, got values in [{stats["pred_min"]}, '
                f'{stats["pred_max"]}] that are not all 0 or 1 (threshold '
                'the logits first)')
        inter, p_area, g_area = stats['inter'], stats['pred'], stats['gt']
        record = {k: _to_builtin(data_sample[k]) for k in _ID_KEYS}
        record['intersection'] = int(inter)
        record['union'] = int(p_area + g_area - inter)
        return record

    def _pixel_counts(self, pred: Tensor, gt: Tensor) -> Dict[str, float]:
        """Pixel counts of one sample, computed on the masks' device.

        All reductions come back in one transfer; :meth:`_process_one`
        validates them afterwards. Values are checked without a comparison
        pass per value: the ground truth (range-checked, then cast to
        uint8) must split into #0 + #1 + #ignore = H*W pixels, and a
        prediction within [0, 1] whose sum equals its non-zero count holds
        only 0 and 1. Comparisons are written as uint8 bitwise ops
        (``logical_not(x ^ v)`` is ``x == v``), which vectorise on CPU where
        ``==`` on int64 does not (about 10x faster, torch 2.13).

        Args:
            pred (Tensor): Prediction of shape (H, W), any dtype.
            gt (Tensor): Ground truth of shape (H, W), integer or bool.

        Returns:
            dict[str, float]: ``inter``, ``pred``, ``gt`` (I, |pred|, |gt|
            after ignore masking and resizing) and the validation counts
            ``gt_one``, ``gt_zero``, ``gt_ign`` and, depending on dtypes,
            ``gt_min``, ``gt_max``, ``pred_min``, ``pred_max``,
            ``pred_sum``, ``pred_count``.
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
            stats['gt_min'], stats['gt_max'] = torch.aminmax(gt)
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
            stats['pred_min'], stats['pred_max'] = torch.aminmax(pred)
            if pred.dtype.is_floating_point:
                stats['pred_sum'] = pred.sum(dtype=acc)
                stats['pred_count'] = count(p)

        if self.eval_size is not None:
            p, g, ign = self._resize(p, g, ign)
            stats['gt'] = count(g)
        else:
            stats['gt'] = stats['gt_one']
        if ign is not None:
            p = p & ~ign  # g (gt == 1) already excludes ignored pixels
        stats['inter'] = count(p & g)
        stats['pred'] = count(p)
        values = torch.stack([v.to(acc) for v in stats.values()]).tolist()
        return dict(zip(stats, values))

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

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Compute oIoU, mIoU and Pr@X (percent) from per-sample records.

        Also logs a table (metrics, sample count, protocol) and, when
        ``output_file`` is set and this is rank 0, writes the JSON report.

        Args:
            results (list[dict]): Records from :meth:`process` (already
                collected from all ranks and truncated to the dataset size).

        Returns:
            dict[str, float]: ``oIoU``, ``mIoU`` and one ``Pr@X`` per
            threshold, in percent, rounded to 2 decimals.

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
        iou = np.full_like(inter, self.empty_iou)
        np.divide(inter, union, out=iou, where=union > 0)
        total_union = union.sum()
        oiou = (
            inter.sum() / total_union if total_union > 0 else self.empty_iou)

        metrics: Dict[str, float] = OrderedDict()
        metrics['oIoU'] = float(np.round(oiou * 100, 2))
        metrics['mIoU'] = float(np.round(iou.mean() * 100, 2))
        for thr in self.pr_thresholds:
            hit = iou > thr if self.strict_pr else iou >= thr
            metrics[f'Pr@{thr}'] = float(np.round(hit.mean() * 100, 2))

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

        if self.output_file is not None and is_main_process():
            self._dump(metrics, results, iou)
            print_log(
                f'per-sample results written to {self.output_file}',
                logger=logger,
                level=logging.INFO)
        return metrics

    def _dump(self, metrics: Dict[str, float], results: List[dict],
              iou: np.ndarray) -> None:
        """Write the JSON report described in the class docstring."""
        summary = dict(metrics)
        summary.update(
            num_samples=len(results),
            protocol=self.protocol,
            pr_rule=self.pr_rule,
            empty_iou=self.empty_iou)
        samples = [
            dict(
                ref_id=r['ref_id'],
                image_id=r['image_id'],
                text=r['text'],
                intersection=r['intersection'],
                union=r['union'],
                iou=float(v)) for r, v in zip(results, iou)
        ]
        report = dict(self.output_meta)
        report.update(summary=summary, samples=samples)
        out_dir = osp.dirname(osp.abspath(self.output_file))
        mkdir_or_exist(out_dir)
        with open(self.output_file, 'w', encoding='utf-8') as f:
            json.dump(report, f, indent=1, ensure_ascii=False)
