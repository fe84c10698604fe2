# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Loading of referring segmentation ground truth."""
import logging
from typing import Optional, Set

from mmcv.transforms import BaseTransform
from mmengine.logging import print_log
from mmseg.registry import TRANSFORMS

from .._refseg_common import (check_segmentation, decode_segmentation,
                              read_mask_file, resize_mask, within_tolerance)


@TRANSFORMS.register_module()
class LoadRefSegAnnotations(BaseTransform):
    """Decode the referred object's mask into ``gt_seg_map``.

    Two mask sources:

    - ``results['segmentation']`` (RRSIS-D, JSONL), decoded with pycocotools:
      an RLE dict (``counts`` a COCO compressed str / bytes or an uncompressed
      list of run lengths), a list of RLE dicts (RRSIS-D stores a list holding
      one), or a list of polygons (flat ``[x1, y1, x2, y2, ...]`` lists in
      image pixels); several parts are merged. mmdet's ``LoadAnnotations`` is
      not used because it treats every list as polygons and drops RRSIS-D's
      RLE masks.
    - otherwise ``results['seg_map_path']`` (RefSegRS ``masks/<id>.tif``,
      RISBench ``mask/<file>``): a mask image file read with Pillow (any
      TIFF compression, PNG, ...; see
      ``mmrsrefseg.datasets._refseg_common.read_mask_file``) and binarised:
      1 where the pixel value is greater than ``mask_threshold``, 0
      elsewhere. A colour file is accepted only when its colour channels are
      equal.

    The mask is produced at the original image size ``results['ori_shape']``
    and ``'gt_seg_map'`` is appended to ``results['seg_fields']``, so the
    transform works in both pipeline orders:

    - train, ``LoadImageFromFile -> LoadRefSegAnnotations -> Resize``: a later
      ``Resize`` resizes the mask (nearest) with the image;
    - test, ``LoadImageFromFile -> Resize -> LoadRefSegAnnotations``: the mask
      stays at the original resolution, where it is evaluated.

    Size-quirk policy (a few RRSIS-D images are 800x787 / 800x801 / 800x802
    while their RLE is 800x800): if the mask size (RLE or file) differs from
    ``ori_shape`` by at most ``size_tolerance`` pixels in each dimension, the
    decoded mask
    is resized with nearest neighbour to ``ori_shape``, counted in
    ``num_resized`` and a warning is logged once per image; beyond that a
    ``ValueError`` is raised.

    Required Keys:

    - segmentation (dict | list): As stored in the annotation; or
    - seg_map_path (str): The mask image file (used when ``segmentation``
      is absent or None).
    - ori_shape (tuple[int, int]): ``(H, W)`` of the loaded image, pixels.
    - img_path (str, optional), ref_id (int, optional): For messages.

    Added / Modified Keys:

    - gt_seg_map (np.ndarray): uint8 mask of shape (H, W), values in {0, 1}
      (1 = referred object).
    - seg_fields (list[str]): ``'gt_seg_map'`` appended once.

    Args:
        size_tolerance (int): Largest tolerated difference in pixels per
            dimension between the mask size and the image size. Defaults to
            16.
        mask_threshold (float): Mask files only: pixels with a value
            strictly greater are the referred object. Defaults to 0 (any
            non-zero value; RefSegRS / RISBench masks are 0 / 255).
        backend_args (dict, optional): Mask files only: arguments of the
            mmengine file backend, as in ``LoadImageFromFile``. Defaults to
            None (local files).

    Raises:
        ValueError: If ``size_tolerance`` is negative; when transforming, if
            the segmentation or mask file is malformed or its size differs
            from the image size by more than ``size_tolerance`` (the message
            names ``img_path`` and ``ref_id``).
        KeyError: If ``ori_shape`` is missing, or both ``segmentation`` and
            ``seg_map_path`` are.
        FileNotFoundError: If the mask file does not exist.
    """

    def __init__(self,
                 size_tolerance: int = 16,
                 mask_threshold: float = 0,
                 backend_args: Optional[dict] = None) -> None:
        if not isinstance(size_tolerance, int) or size_tolerance < 0:
            raise ValueError('size_tolerance must be a non-negative int, got '
                             f'{size_tolerance!r}')
        self.size_tolerance = size_tolerance
        self.mask_threshold = mask_threshold
        self.backend_args = backend_args
        self.num_resized = 0
        self._warned_images: Set[str] = set()

    def transform(self, results: dict) -> dict:
        """Decode the mask.

        Args:
            results (dict): Result dict from the dataset / previous
                transforms.

        Returns:
            dict: ``results`` with ``gt_seg_map`` and ``seg_fields`` set.
        """
        img_path = results.get('img_path')
        where = f'{img_path} (ref_id {results.get("ref_id")})'
        if 'ori_shape' not in results:
            raise KeyError(f'{where}: LoadRefSegAnnotations needs '
                           "results['ori_shape']")
        height, width = (int(s) for s in results['ori_shape'][:2])
        segmentation = results.get('segmentation')
        if segmentation is not None:
            check_segmentation(segmentation, where)
            mask = decode_segmentation(segmentation, height, width)
        elif results.get('seg_map_path') is not None:
            mask = read_mask_file(results['seg_map_path'], where,
                                  self.mask_threshold, self.backend_args)
        else:
            raise KeyError(f'{where}: LoadRefSegAnnotations needs '
                           "results['segmentation'] (RLE / polygons) or "
                           "results['seg_map_path'] (a mask file)")
        if mask.shape != (height, width):
            if not within_tolerance(mask.shape,
                                    (height, width), self.size_tolerance):
                raise ValueError(
                    f'{where}: mask size (h, w) {mask.shape} differs from '
                    f'the image size {(height, width)} by more than '
                    f'size_tolerance={self.size_tolerance} px')
            if img_path not in self._warned_images:
                self._warned_images.add(img_path)
                print_log(
                    f'{where}: mask size (h, w) {mask.shape} != image size '
                    f'{(height, width)}; resized (nearest) to the image size',
                    logger='current',
                    level=logging.WARNING)
            mask = resize_mask(mask, (height, width))
            self.num_resized += 1
        results['gt_seg_map'] = mask
        seg_fields = results.setdefault('seg_fields', [])
        if 'gt_seg_map' not in seg_fields:
            seg_fields.append('gt_seg_map')
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}('
                f'size_tolerance={self.size_tolerance}, '
                f'mask_threshold={self.mask_threshold}, '
                f'backend_args={self.backend_args})')
