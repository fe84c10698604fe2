# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Reports of per-sample referring-segmentation records.

The per-category and per-size breakdown, the logged tables and the JSON
report of :class:`RefSegIoUMetric` (``tools/test.py --out``);
``tools/analysis_tools/compare_results.py`` rebuilds its tables from such
a report's samples with the same functions.

A *record* is a dict holding at least ``intersection`` and ``union``
(pixels) and, for the breakdown, ``category_id`` (int or None) and
``gt_area`` (ground-truth pixels at the original resolution).
"""
import json
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from mmengine.logging import MMLogger, print_log
from mmengine.utils import mkdir_or_exist
from prettytable import PrettyTable

from .refseg_scores import (SIZE_NAMES, refseg_scores, sample_ious,
                            size_bounds, size_label)

#: Keys of the settings dict that :func:`refseg_scores` takes.
SETTING_KEYS = ('pr_thresholds', 'strict_pr', 'empty_iou')


def scores_of(records: Sequence[dict], settings: dict) -> Dict[str, float]:
    """oIoU / mIoU / Pr@X (percent) of some records.

    Args:
        records (Sequence[dict]): At least one record.
        settings (dict): ``pr_thresholds``, ``strict_pr`` and ``empty_iou``
            (see :func:`refseg_scores`).

    Returns:
        dict[str, float]: ``oIoU``, ``mIoU``, ``Pr@X`` ... in [0, 100].
    """
    return refseg_scores([r['intersection'] for r in records],
                         [r['union'] for r in records],
                         **{k: settings[k]
                            for k in SETTING_KEYS})


def category_rows(records: Sequence[dict], settings: dict,
                  category_name: Callable[[int], str]) -> List[dict]:
    """Scores per category, for the categories that have records.

    Args:
        records (Sequence[dict]): Records with ``category_id``; those
            whose ``category_id`` is None are left out.
        settings (dict): See :func:`scores_of`.
        category_name (Callable[[int], str]): Name of a category id.

    Returns:
        list[dict]: ``{category_id, category, num_samples, <scores>}`` by
        ascending category id.
    """
    groups: Dict[int, List[dict]] = {}
    for record in records:
        if record['category_id'] is not None:
            groups.setdefault(record['category_id'], []).append(record)
    return [
        dict(
            category_id=cid,
            category=category_name(cid),
            num_samples=len(groups[cid]),
            **scores_of(groups[cid], settings)) for cid in sorted(groups)
    ]


def size_rows(records: Sequence[dict], size_thresholds: Tuple[float, float],
              settings: dict) -> List[dict]:
    """Scores per object size (ground-truth area), for the bins that have
    records.

    Args:
        records (Sequence[dict]): Records with ``gt_area``.
        size_thresholds (tuple[float, float]): ``(t0, t1)`` in pixels (see
            :func:`size_label`).
        settings (dict): See :func:`scores_of`.

    Returns:
        list[dict]: ``{size, min_area, max_area, num_samples, <scores>}``
        from small to large (``max_area`` exclusive, None for ``large``).
    """
    groups: Dict[str, List[dict]] = {name: [] for name in SIZE_NAMES}
    for record in records:
        groups[size_label(record['gt_area'], size_thresholds)].append(record)
    rows = []
    for name in SIZE_NAMES:
        if groups[name]:
            low, high = size_bounds(name, size_thresholds)
            rows.append(
                dict(
                    size=name,
                    min_area=low,
                    max_area=high,
                    num_samples=len(groups[name]),
                    **scores_of(groups[name], settings)))
    return rows


def _score_table(first: List[str], rows: List[List], keys: List[str],
                 scores: List[dict]) -> str:
    """A right-aligned PrettyTable, first column left-aligned."""
    table = PrettyTable(field_names=first + keys)
    table.align = 'r'
    table.align[first[0]] = 'l'
    for row, score in zip(rows, scores):
        table.add_row(row + [f'{score[k]:.2f}' for k in keys])
    return table.get_string()


def log_summary(metrics: Dict[str, float], rows: Sequence[Tuple[str, object]],
                logger: MMLogger) -> None:
    """Log the overall table: one row per metric, then ``rows``.

    Args:
        metrics (dict[str, float]): Overall scores in percent.
        rows (Sequence[tuple[str, object]]): Further ``(name, value)``
            rows (sample count, protocol, ...).
        logger (MMLogger): Where to log.
    """
    table = PrettyTable(field_names=['Metric', 'Value'])
    table.align = 'l'
    for key, value in metrics.items():
        table.add_row([key, f'{value:.2f}'])
    for name, value in rows:
        table.add_row([name, value])
    print_log('referring segmentation results:', logger)
    print_log('\n' + table.get_string(), logger=logger)


def log_breakdown(by_category: List[dict], by_size: List[dict],
                  num_samples: int, keys: List[str], logger: MMLogger) -> None:
    """Log the per-category and per-size tables.

    Args:
        by_category (list[dict]): Rows of :func:`category_rows` (no table
            when empty).
        by_size (list[dict]): Rows of :func:`size_rows`.
        num_samples (int): All samples, to report how many have no
            category.
        keys (list[str]): Score columns (``oIoU``, ``mIoU``, ``Pr@X``...).
        logger (MMLogger): Where to log.
    """
    if by_category:
        table = _score_table(
            ['Category', 'id', 'samples'],
            [[r['category'], r['category_id'], r['num_samples']]
             for r in by_category], keys, by_category)
        print_log('per-category results:', logger)
        print_log('\n' + table, logger=logger)
    missing = num_samples - sum(r['num_samples'] for r in by_category)
    if missing:
        print_log(
            f'{missing} of {num_samples} samples have no category_id and '
            'are left out of the per-category table (counted overall and '
            'per size)',
            logger=logger)
    areas = [
        f'>= {r["min_area"]}'
        if r['max_area'] is None else f'[{r["min_area"]}, {r["max_area"]})'
        for r in by_size
    ]
    table = _score_table(['Size', 'GT area (px)', 'samples'],
                         [[r['size'], area, r['num_samples']]
                          for r, area in zip(by_size, areas)], keys, by_size)
    print_log(
        'per-size results (ground-truth area at the original resolution):',
        logger)
    print_log('\n' + table, logger=logger)


def sample_entries(
        records: Sequence[dict], empty_iou: float,
        size_thresholds: Tuple[float, float],
        category_name: Callable[[Optional[int]], Optional[str]]) -> List[dict]:
    """Per-sample entries of the JSON report.

    Args:
        records (Sequence[dict]): Metric records (``ref_id``, ``sent_id``,
            ``image_id``, ``text``, ``category_id``, ``gt_area``,
            ``intersection``, ``union``).
        empty_iou (float): IoU of a sample with an empty union.
        size_thresholds (tuple[float, float]): Size bins in pixels.
        category_name (Callable): Name of a category id (None for None).

    Returns:
        list[dict]: ``{ref_id, sent_id, image_id, text, category_id,
        category, gt_area, size, intersection, union, iou}``, ``iou`` in
        [0, 1], in the order of ``records``.
    """
    ious = sample_ious([r['intersection'] for r in records],
                       [r['union'] for r in records], empty_iou)
    names = {
        cid: category_name(cid)
        for cid in {r['category_id']
                    for r in records}
    }
    return [
        dict(
            ref_id=r['ref_id'],
            sent_id=r['sent_id'],
            image_id=r['image_id'],
            text=r['text'],
            category_id=r['category_id'],
            category=names[r['category_id']],
            gt_area=r['gt_area'],
            size=size_label(r['gt_area'], size_thresholds),
            intersection=r['intersection'],
            union=r['union'],
            iou=float(iou)) for r, iou in zip(records, ious)
    ]


def write_report(path: str, meta: dict, summary: dict,
                 breakdown: Optional[Dict[str, List[dict]]],
                 samples: List[dict]) -> None:
    """Write ``{**meta, summary, [by_category, by_size,] samples}`` as JSON.

    Args:
        path (str): Output file; its directory is created.
        meta (dict): Leading top-level keys (config, checkpoint, ...).
        summary (dict): Overall scores and protocol settings.
        breakdown (dict, optional): ``by_category`` and ``by_size`` rows;
            None leaves both keys out.
        samples (list[dict]): Entries of :func:`sample_entries`.
    """
    report = dict(meta)
    report['summary'] = summary
    if breakdown is not None:
        report.update(breakdown)
    report['samples'] = samples
    mkdir_or_exist(osp.dirname(osp.abspath(path)))
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(report, f, indent=1, ensure_ascii=False)
