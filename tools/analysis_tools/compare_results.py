# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Compare ``tools/test.py --out`` reports side by side as Markdown tables.

Every table is rebuilt from the per-sample records (intersection, union,
category, ground-truth area) with each file's own protocol settings
(Pr thresholds, Pr rule, empty IoU), and each file's overall numbers are
checked against its ``summary``. Sections:

1. overall: one row per file (samples, protocol, oIoU, mIoU, Pr@X);
2. per category: one table per metric, categories as rows, files as
   columns (samples without a category are left out);
3. per object size (small / medium / large by ground-truth area at the
   original resolution, thresholds from the first file or
   ``--size-thresholds``): one table per metric;
4. the ``--top-k`` samples whose IoU differs most between the first file
   and each other file, matched by ``(ref_id, sent_id, text)``; skipped,
   with a note, when the files do not hold the same samples.

The best value of each row is in bold. Example::

    python tools/analysis_tools/compare_results.py \\
        work_dirs/a/results_test.json work_dirs/b/results_test.json \\
        --names RSRefSeg-b RSRefSeg-l --out comparison.md
"""
import argparse
import json
import os.path as osp
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from mmrsrefseg.evaluation.functional import (SIZE_NAMES, category_rows,
                                              check_size_thresholds,
                                              sample_ious, scores_of,
                                              size_bounds, size_label,
                                              size_rows)

#: Per-sample fields every report must have.
REQUIRED_SAMPLE_KEYS = ('ref_id', 'text', 'intersection', 'union')
#: Breakdown tables show these metrics unless --metrics says otherwise.
DEFAULT_METRICS = ('oIoU', 'mIoU', 'Pr@0.5')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='Compare RefSegIoUMetric JSON reports (tools/test.py '
        '--out) side by side: overall, per category, per object size, and '
        'the samples where two models differ most, as Markdown.')
    parser.add_argument(
        'reports',
        nargs='+',
        help='JSON reports; the first is the baseline '
        'of the per-sample comparison')
    parser.add_argument(
        '--names',
        nargs='+',
        help='column names, one per report (default: file names)')
    parser.add_argument(
        '--metrics',
        nargs='+',
        default=list(DEFAULT_METRICS),
        help='metrics of the per-category and per-size tables '
        f'(default: {" ".join(DEFAULT_METRICS)})')
    parser.add_argument(
        '--size-thresholds',
        nargs=2,
        type=float,
        metavar=('SMALL', 'LARGE'),
        help='ground-truth areas in pixels separating small / medium / '
        'large (default: those of the first report, COCO 1024 9216)')
    parser.add_argument(
        '--top-k',
        type=int,
        default=10,
        help='samples listed per pair of reports (0: no per-sample '
        'section; default: 10)')
    parser.add_argument(
        '--out', help='write the Markdown here instead of printing it')
    return parser.parse_args(argv)


def load_report(path: str) -> dict:
    """Load a report and check its structure and its summary.

    Args:
        path (str): JSON written by ``RefSegIoUMetric(output_file=...)``.

    Returns:
        dict: The report, with ``settings`` added: ``pr_thresholds``
        (tuple[float]), ``strict_pr`` (bool), ``empty_iou`` (float).

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If a field is missing or malformed, or the summary's
            overall metrics do not match those rebuilt from the samples.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path}: no such report')
    with open(path, encoding='utf-8') as f:
        try:
            report = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f'{path}: not valid JSON ({err})') from None
    if not isinstance(report, dict):
        raise ValueError(f'{path}: expected a JSON object with "summary" and '
                         f'"samples", got {type(report).__name__}')
    for key in ('summary', 'samples'):
        if key not in report:
            raise ValueError(f'{path}: no "{key}"; is this a tools/test.py '
                             '--out report?')
    summary, samples = report['summary'], report['samples']
    if not isinstance(samples, list) or not samples:
        raise ValueError(f'{path}: "samples" must be a non-empty list')
    for index, sample in enumerate(samples):
        missing = [k for k in REQUIRED_SAMPLE_KEYS if k not in sample]
        if missing:
            raise ValueError(f'{path}: sample {index} has no {missing}')
    for key in ('oIoU', 'mIoU', 'pr_rule', 'empty_iou'):
        if key not in summary:
            raise ValueError(f'{path}: summary has no "{key}"')
    pr_keys = [k for k in summary if k.startswith('Pr@')]
    try:
        thresholds = tuple(float(k[3:]) for k in pr_keys)
    except ValueError:
        raise ValueError(f'{path}: malformed Pr keys {pr_keys}') from None
    settings = dict(
        pr_thresholds=thresholds,
        strict_pr=summary['pr_rule'] == 'IoU > X',
        empty_iou=float(summary['empty_iou']))
    rebuilt = scores_of(samples, settings)
    for key, value in rebuilt.items():
        if abs(summary[key] - value) > 1e-9:
            raise ValueError(f'{path}: summary {key}={summary[key]} but its '
                             f'{len(samples)} samples give {value}; the '
                             'file was edited or truncated')
    report['settings'] = settings
    return report


def sample_keys(samples: List[dict]) -> List[Tuple]:
    """Matching keys ``(ref_id, sent_id, text, occurrence)`` of samples.

    ``occurrence`` numbers repeats of the same ``(ref_id, sent_id, text)``
    (e.g. ``text_mode='random'``), in file order.
    """
    seen: Counter = Counter()
    keys = []
    for sample in samples:
        base = (sample['ref_id'], sample.get('sent_id'), sample['text'])
        keys.append(base + (seen[base], ))
        seen[base] += 1
    return keys


def fmt(value: Optional[float]) -> str:
    """A percentage with 2 decimals, ``-`` for a missing value."""
    return '-' if value is None else f'{value:.2f}'


def cell(text: object) -> str:
    """Escape a value for a Markdown table cell."""
    return str(text).replace('|', '\\|').replace('\n', ' ')


def markdown_table(header: List[str], rows: List[List[str]],
                   numeric_from: int) -> List[str]:
    """Lines of a Markdown table; columns from ``numeric_from`` on are
    right-aligned."""
    align = [
        '---:' if i >= numeric_from else '---' for i in range(len(header))
    ]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '|'.join(align) + '|']
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    return lines


def bold_best(values: List[Optional[float]]) -> List[str]:
    """Format values, the largest in bold (all ties) when there are two or
    more values."""
    present = [v for v in values if v is not None]
    best = max(present) if len(present) > 1 else None
    return [
        f'**{fmt(v)}**' if v is not None and v == best else fmt(v)
        for v in values
    ]


def overall_section(reports: List[dict], names: List[str]) -> List[str]:
    """The overall table, one row per report."""
    metric_keys = ['oIoU', 'mIoU']
    thresholds = sorted(
        {t
         for r in reports
         for t in r['settings']['pr_thresholds']})
    metric_keys += [f'Pr@{t}' for t in thresholds]
    columns = {
        key: bold_best([r['summary'].get(key) for r in reports])
        for key in metric_keys
    }
    rows = []
    for i, (report, name) in enumerate(zip(reports, names)):
        summary = report['summary']
        rows.append([
            cell(name),
            str(len(report['samples'])),
            cell(summary.get('protocol', '?')),
            cell(summary['pr_rule'])
        ] + [columns[key][i] for key in metric_keys])
    return ['## Overall', ''] + markdown_table(
        ['model', 'samples', 'protocol', 'Pr rule'] + metric_keys, rows,
        4) + ['']


def group_section(title: str, label: str, groups: List[Tuple[object, str]],
                  rows: List[Dict[object, dict]], names: List[str],
                  metrics: List[str]) -> List[str]:
    """One table per metric: groups as rows, reports as columns.

    Args:
        title (str): Section title.
        label (str): Header of the group column.
        groups (list[tuple[object, str]]): Per group its key and row label.
        rows (list[dict]): Per report, its breakdown rows
            (:func:`category_rows` / :func:`size_rows`) by group key; a
            report without samples in a group has no row for it.
        names (list[str]): Column names.
        metrics (list[str]): Metric keys.
    """
    lines = [f'## {title}', '']
    for metric in metrics:
        table = []
        for key, row_label in groups:
            found = [by_key.get(key, {}) for by_key in rows]
            counts = sorted({row.get('num_samples', 0) for row in found})
            table.append([cell(row_label), '/'.join(map(str, counts))] +
                         bold_best([row.get(metric) for row in found]))
        lines += [f'**{metric}**', '']
        lines += markdown_table([label, 'samples'] + [cell(n) for n in names],
                                table, 1) + ['']
    return lines


def category_section(reports: List[dict], names: List[str],
                     metrics: List[str]) -> List[str]:
    """Per-category tables; categories by ascending id, named as in the
    first report that has them."""
    category_names: Dict[int, str] = {}
    for report in reports:
        for sample in report['samples']:
            cid = sample['category_id']
            if cid is not None:
                category_names.setdefault(cid,
                                          sample.get('category') or f'{cid}')
    if not category_names:
        return [
            '## Per category', '',
            'No sample carries a category (dataset without categories).', ''
        ]
    rows = [{
        row['category_id']: row
        for row in category_rows(r['samples'], r['settings'],
                                 category_names.__getitem__)
    } for r in reports]
    groups = [(cid, category_names[cid]) for cid in sorted(category_names)]
    return group_section('Per category', 'category', groups, rows, names,
                         metrics)


def size_section(reports: List[dict], names: List[str], metrics: List[str],
                 thresholds: Tuple[float, float]) -> List[str]:
    """Per-size tables (small to large), sizes that no report has left
    out."""
    rows = [{
        row['size']: row
        for row in size_rows(r['samples'], thresholds, r['settings'])
    } for r in reports]
    groups = []
    for name in SIZE_NAMES:
        if any(name in by_size for by_size in rows):
            low, high = size_bounds(name, thresholds)
            if high is None:
                area = f'area >= {low:g}'
            elif low == 0:
                area = f'area < {high:g}'
            else:
                area = f'{low:g} <= area < {high:g}'
            groups.append((name, f'{name} ({area})'))
    return group_section(
        'Per object size (ground-truth area in pixels at the original '
        'resolution)', 'size', groups, rows, names, metrics)


def difference_section(reports: List[dict], names: List[str], top_k: int,
                       thresholds: Tuple[float, float]) -> List[str]:
    """Per (first, other) pair the samples whose IoU differs most."""
    lines = []
    base = reports[0]
    base_keys = sample_keys(base['samples'])
    base_iou = sample_ious([s['intersection'] for s in base['samples']],
                           [s['union'] for s in base['samples']],
                           base['settings']['empty_iou'])
    for report, name in zip(reports[1:], names[1:]):
        keys = sample_keys(report['samples'])
        position = {key: i for i, key in enumerate(keys)}
        title = f'## Largest per-sample IoU differences: {name} vs {names[0]}'
        only_base = [k for k in base_keys if k not in position]
        only_other = len(keys) - (len(base_keys) - len(only_base))
        if only_base or only_other:
            example = only_base[0] if only_base else None
            lines += [
                title, '',
                f'Skipped: the files hold different samples ({len(only_base)}'
                f' of {names[0]} not in {name}, {only_other} of {name} not in'
                f' {names[0]}' +
                (f'; e.g. ref_id={example[0]!r} sent_id={example[1]!r} '
                 f'text={example[2]!r}' if example else '') + ').', ''
            ]
            continue
        order = [position[k] for k in base_keys]
        other = [report['samples'][i] for i in order]
        iou = sample_ious([s['intersection'] for s in other],
                          [s['union'] for s in other],
                          report['settings']['empty_iou'])
        delta = (iou - base_iou) * 100
        # largest |delta| first, dataset order among ties
        ranked = sorted(
            range(len(delta)), key=lambda i: (-abs(delta[i]), i))[:top_k]
        rows = []
        for i in ranked:
            sample = base['samples'][i]
            size = size_label(sample['gt_area'],
                              thresholds) if 'gt_area' in sample else '-'
            rows.append([
                str(len(rows) + 1),
                cell(sample['ref_id']),
                cell(sample.get('sent_id', '-')),
                cell(sample['text']),
                cell(sample.get('category') or '-'),
                cell(size),
                fmt(base_iou[i] * 100),
                fmt(iou[i] * 100), f'{delta[i]:+.2f}'
            ])
        mean_abs = float(np.abs(delta).mean())
        changed = int(np.count_nonzero(delta))
        lines += [
            title, '', f'{changed} of {len(delta)} samples differ; mean '
            f'|ΔIoU| = {mean_abs:.2f} points. IoU in percent, Δ = '
            f'{name} - {names[0]}.', ''
        ]
        lines += markdown_table([
            '#', 'ref_id', 'sent_id', 'text', 'category', 'size',
            cell(names[0]),
            cell(name), 'Δ'
        ], rows, 6) + ['']
    return lines


def compare(reports: List[dict],
            names: List[str],
            metrics: Sequence[str] = DEFAULT_METRICS,
            size_thresholds: Optional[Sequence[float]] = None,
            top_k: int = 10) -> str:
    """The whole Markdown comparison.

    Args:
        reports (list[dict]): Reports from :func:`load_report`.
        names (list[str]): One column name per report.
        metrics (Sequence[str]): Metrics of the breakdown tables.
        size_thresholds (Sequence[float], optional): ``(t0, t1)`` pixel
            areas of the size bins; None takes the first report's
            (``summary['size_thresholds']``, COCO's (1024, 9216) if absent).
        top_k (int): Samples listed per pair (0: none).

    Returns:
        str: Markdown text.

    Raises:
        ValueError: For a metric no report has, or bad thresholds.
    """
    known = ['oIoU', 'mIoU'] + sorted(
        {f'Pr@{t}'
         for r in reports
         for t in r['settings']['pr_thresholds']})
    unknown = [m for m in metrics if m not in known]
    if unknown:
        raise ValueError(f'unknown metrics {unknown}; the reports have '
                         f'{known}')
    if size_thresholds is None:
        size_thresholds = reports[0]['summary'].get('size_thresholds',
                                                    (32**2, 96**2))
    thresholds = check_size_thresholds(size_thresholds)
    lines = overall_section(reports, names)

    def lacking(key: str) -> List[str]:
        return [
            n for r, n in zip(reports, names)
            if any(key not in s for s in r['samples'])
        ]

    no_category = lacking('category_id')
    if no_category:
        lines += [
            '## Per category', '', 'Skipped: no per-sample `category_id` in '
            f'{", ".join(no_category)} (reports written before the '
            'breakdown was added).', ''
        ]
    else:
        lines += category_section(reports, names, list(metrics))
    no_area = lacking('gt_area')
    if no_area:
        lines += [
            '## Per object size', '', 'Skipped: no per-sample `gt_area` in '
            f'{", ".join(no_area)} (reports written before the breakdown '
            'was added).', ''
        ]
    else:
        lines += size_section(reports, names, list(metrics), thresholds)
    if top_k > 0 and len(reports) > 1:
        lines += difference_section(reports, names, top_k, thresholds)
    return '\n'.join(lines)


def default_names(paths: Sequence[str]) -> List[str]:
    """File names without extension, or the paths when those repeat."""
    stems = [osp.splitext(osp.basename(p))[0] for p in paths]
    return stems if len(set(stems)) == len(stems) else list(paths)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Load the reports and print or write the comparison."""
    args = parse_args(argv)
    names = args.names or default_names(args.reports)
    if len(names) != len(args.reports):
        raise SystemExit(f'--names gives {len(names)} names for '
                         f'{len(args.reports)} reports')
    if args.top_k < 0:
        raise SystemExit(f'--top-k must be >= 0, got {args.top_k}')
    reports = [load_report(path) for path in args.reports]
    text = compare(reports, names, args.metrics, args.size_thresholds,
                   args.top_k)
    if args.out:
        with open(args.out, 'w', encoding='utf-8') as f:
            f.write(text + '\n')
        print(f'comparison written to {args.out}')
    else:
        print(text)


if __name__ == '__main__':
    main()
