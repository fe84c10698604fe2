# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""oIoU / mIoU / Pr@X from per-sample pixel counts, and object-size bins.

Shared by :class:`~mmrsrefseg.evaluation.RefSegIoUMetric` (overall, per
category and per size), ``tools/analysis_tools/compare_results.py`` (which
rebuilds every table from the per-sample records of the JSON reports) and
:class:`~mmrsrefseg.visualization.RefSegLocalVisualizer` (the IoU written on
a picture), so all give the same numbers.
"""
from collections import OrderedDict
from numbers import Real
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

#: Object-size bins, from the smallest ground-truth area to the largest.
SIZE_NAMES = ('small', 'medium', 'large')


def refseg_scores(intersection: Sequence[int],
                  union: Sequence[int],
                  pr_thresholds: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9),
                  strict_pr: bool = False,
                  empty_iou: float = 1.0) -> Dict[str, float]:
    """oIoU, mIoU and Pr@X of a set of samples, in percent.

    - ``oIoU`` = ΣI / ΣU (``empty_iou`` when ΣU = 0);
    - ``mIoU`` = mean of the per-sample IoU I / U (``empty_iou`` for a
      sample with U = 0);
    - ``Pr@X`` = share of samples with IoU >= X (``IoU > X`` when
      ``strict_pr``).

    A sample's IoU is one correctly rounded float64 division of two
    integers, so I = 1, U = 2 gives exactly 0.5.

    Args:
        intersection (Sequence[int]): Per-sample intersection I in pixels,
            length N >= 1.
        union (Sequence[int]): Per-sample union U in pixels, length N.
        pr_thresholds (Sequence[float]): Thresholds X in [0, 1]; the key of
            each is ``f'Pr@{X}'``. Defaults to (0.5, 0.6, 0.7, 0.8, 0.9).
        strict_pr (bool): Count ``IoU > X`` instead of ``IoU >= X``.
            Defaults to False.
        empty_iou (float): IoU in [0, 1] of a sample with U = 0.
            Defaults to 1.0.

    Returns:
        OrderedDict[str, float]: ``oIoU``, ``mIoU``, ``Pr@X`` ... in
        [0, 100], rounded to 2 decimals. Never NaN.

    Raises:
        ValueError: If there are no samples or the lengths differ.
    """
    inter = np.asarray(intersection, dtype=np.float64).reshape(-1)
    uni = np.asarray(union, dtype=np.float64).reshape(-1)
    if inter.size == 0 or inter.shape != uni.shape:
        raise ValueError('refseg_scores: needs the same number (>= 1) of '
                         f'intersections and unions, got {inter.size} and '
                         f'{uni.size}')
    iou = sample_ious(inter, uni, empty_iou)
    total_union = uni.sum()
    oiou = inter.sum() / total_union if total_union > 0 else empty_iou
    scores: Dict[str, float] = OrderedDict()
    scores['oIoU'] = float(np.round(oiou * 100, 2))
    scores['mIoU'] = float(np.round(iou.mean() * 100, 2))
    for thr in pr_thresholds:
        hit = iou > thr if strict_pr else iou >= thr
        scores[f'Pr@{thr}'] = float(np.round(hit.mean() * 100, 2))
    return scores


def sample_ious(intersection: Sequence[int], union: Sequence[int],
                empty_iou: float) -> np.ndarray:
    """Per-sample IoU I / U in [0, 1] (float64), ``empty_iou`` where U = 0.

    Args:
        intersection (Sequence[int]): I in pixels, length N.
        union (Sequence[int]): U in pixels, length N.
        empty_iou (float): IoU of a sample with U = 0.

    Returns:
        np.ndarray: float64 array of shape (N, ).
    """
    inter = np.asarray(intersection, dtype=np.float64).reshape(-1)
    uni = np.asarray(union, dtype=np.float64).reshape(-1)
    iou = np.full_like(inter, empty_iou)
    np.divide(inter, uni, out=iou, where=uni > 0)
    return iou


def check_size_thresholds(thresholds: Sequence[Real]) -> Tuple[Real, Real]:
    """Validate object-size area thresholds ``(t_small, t_large)``.

    Args:
        thresholds (Sequence[Real]): Two areas in pixels, 0 < t0 < t1.

    Returns:
        tuple[Real, Real]: The thresholds.

    Raises:
        ValueError: If there are not exactly two positive, strictly
            increasing numbers.
    """
    values = tuple(thresholds)
    if (len(values) != 2 or not all(
            isinstance(v, Real) and not isinstance(v, bool) for v in values)
            or not 0 < values[0] < values[1]):
        raise ValueError('size_thresholds must be two areas in pixels '
                         f'0 < small < large, got {thresholds!r}')
    return values


def size_label(area: int, thresholds: Sequence[Real] = (32**2, 96**2)) -> str:
    """Object-size bin of a ground-truth mask area.

    ``small``: area < t0; ``medium``: t0 <= area < t1; ``large``:
    area >= t1. With the default COCO thresholds (32², 96²) a mask of
    1,024 pixels is medium (COCO's own evaluation puts the boundary value
    in both bins).

    Args:
        area (int): Ground-truth mask area in pixels (>= 0) at the original
            image resolution.
        thresholds (Sequence[Real]): ``(t0, t1)`` in pixels. Defaults to
            ``(32**2, 96**2)`` (COCO).

    Returns:
        str: One of :data:`SIZE_NAMES`.
    """
    if area < thresholds[0]:
        return SIZE_NAMES[0]
    if area < thresholds[1]:
        return SIZE_NAMES[1]
    return SIZE_NAMES[2]


def size_bounds(name: str,
                thresholds: Sequence[Real]) -> Tuple[Real, Optional[Real]]:
    """Area range ``[low, high)`` in pixels of a size bin.

    Args:
        name (str): One of :data:`SIZE_NAMES`.
        thresholds (Sequence[Real]): ``(t0, t1)`` in pixels.

    Returns:
        tuple[Real, Real | None]: ``low`` (inclusive) and ``high``
        (exclusive; None for ``large``).

    Raises:
        ValueError: For an unknown bin name.
    """
    if name not in SIZE_NAMES:
        raise ValueError(f'unknown size bin {name!r}; expected one of '
                         f'{SIZE_NAMES}')
    edges = (0, ) + tuple(thresholds) + (None, )
    index = SIZE_NAMES.index(name)
    return edges[index], edges[index + 1]
