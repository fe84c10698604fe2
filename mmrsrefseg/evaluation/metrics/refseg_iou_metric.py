# Copyright (c) mmrsrefseg contributors. All rights reserved.
import logging
from numbers import Integral, Real
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.dist import is_main_process
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from mmseg.registry import METRICS
from torch import Tensor

from ..functional import (category_rows, check_size_thresholds, count_pixels,
                          log_breakdown, log_summary, sample_entries,
                          scores_of, size_rows, write_report)

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

    Speed: pixels are counted by
    :func:`~mmrsrefseg.evaluation.functional.count_pixels`, in one thread
    on the CPU (numpy comparisons on uint8 / bool, ``cv2.countNonZero``),
    so the metric never waits on torch's intra-op threads, which stall when
    the CPU is shared (e.g. with dataloader workers); masks on a GPU are
    copied to the CPU first. The counts equal a plain reference
    computation bit for bit (tested).

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
        gt = data_sample['gt_sem_seg']['data']
        try:
            counts = count_pixels(data_sample['pred_sem_seg']['data'], gt,
                                  self.ignore_index, self.eval_size)
        except ValueError as err:
            raise ValueError(
                f'RefSegIoUMetric: sample {where}: {err}') from None
        ori_shape = data_sample.get('ori_shape')
        if ori_shape is not None and tuple(ori_shape[:2]) != tuple(
                gt.shape[-2:]):
            raise ValueError(f'RefSegIoUMetric: sample {where}: masks of '
                             f'shape {tuple(gt.shape[-2:])} are not at the '
                             f'original resolution ori_shape={ori_shape}')
        record = {k: _to_builtin(data_sample[k]) for k in _ID_KEYS}
        for key in _OPTIONAL_KEYS:
            record[key] = _to_builtin(data_sample.get(key))
        self._check_category(record['category_id'], where)
        record.update(counts._asdict())
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

    @property
    def settings(self) -> dict:
        """dict: ``pr_thresholds``, ``strict_pr`` and ``empty_iou``, as
        :func:`~mmrsrefseg.evaluation.functional.refseg_scores` takes them.
        """
        return dict(
            pr_thresholds=self.pr_thresholds,
            strict_pr=self.strict_pr,
            empty_iou=self.empty_iou)

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
        settings = self.settings
        metrics = scores_of(results, settings)
        log_summary(metrics, [('samples', len(results)),
                              ('protocol', self.protocol),
                              ('Pr rule', self.pr_rule),
                              ('empty IoU', self.empty_iou)], logger)
        breakdown = None
        if self.breakdown:
            breakdown = dict(
                by_category=category_rows(results, settings,
                                          self.category_name),
                by_size=size_rows(results, self.size_thresholds, settings))
            log_breakdown(breakdown['by_category'], breakdown['by_size'],
                          len(results), list(metrics), logger)
        if self.output_file is not None and is_main_process():
            summary = dict(
                metrics,
                num_samples=len(results),
                protocol=self.protocol,
                pr_rule=self.pr_rule,
                empty_iou=self.empty_iou,
                size_thresholds=list(self.size_thresholds))
            samples = sample_entries(results, self.empty_iou,
                                     self.size_thresholds, self.category_name)
            write_report(self.output_file, self.output_meta, summary,
                         breakdown, samples)
            print_log(
                f'per-sample results written to {self.output_file}',
                logger=logger,
                level=logging.INFO)
        return metrics
