# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Loading of referring segmentation ground truth."""
from typing import Optional

from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from ..utils import decode_segmentation, read_mask_file, resize_mask


@TRANSFORMS.register_module()
class LoadRefSegAnnotations(BaseTransform):
    """Decode the referred object's mask into ``gt_seg_map``.

    Loads what the dataset validated when it was built (every
    :class:`~mmrsrefseg.datasets.base_refseg_dataset.BaseRefSegDataset`
    checks the segmentation or the mask file header, the mask / image sizes
    and decides the size tolerance); this transform checks none of it again.
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
      :func:`mmrsrefseg.datasets.utils.read_mask_file`) and binarised: 1
      where the pixel value is greater than ``mask_threshold``, 0 elsewhere.
      A colour file is accepted only when its colour channels are equal.

    The mask is produced at the original image size ``results['ori_shape']``
    and ``'gt_seg_map'`` is appended to ``results['seg_fields']``, so the
    transform works in both pipeline orders:

    - train, ``LoadImageFromFile -> LoadRefSegAnnotations -> Resize``: a later
      ``Resize`` resizes the mask (nearest) with the image;
    - test, ``LoadImageFromFile -> Resize -> LoadRefSegAnnotations``: the mask
      stays at the original resolution, where it is evaluated.

    Size quirk (a few RRSIS-D images are 800x787 / 800x801 / 800x802 while
    their RLE is 800x800): a sample the dataset accepted with a different
    mask size (within its ``size_tolerance``, counted and logged there)
    carries ``resize_mask=True``; its decoded mask is resized with nearest
    neighbour to ``ori_shape``. Any other size difference is an error.

    Required Keys:

    - segmentation (dict | list): As stored in the annotation; or
    - seg_map_path (str): The mask image file (used when ``segmentation``
      is absent or None).
    - ori_shape (tuple[int, int]): ``(H, W)`` of the loaded image, pixels.
    - resize_mask (bool, optional): Set by the dataset, see above.
    - img_path (str, optional), ref_id (int, optional): For messages.

    Added / Modified Keys:

    - gt_seg_map (np.ndarray): uint8 mask of shape (H, W), values in {0, 1}
      (1 = referred object).
    - seg_fields (list[str]): ``'gt_seg_map'`` appended once.

    Args:
        mask_threshold (float): Mask files only: pixels with a value
            strictly greater are the referred object. Defaults to 0 (any
            non-zero value; RefSegRS / RISBench masks are 0 / 255).
        backend_args (dict, optional): Mask files only: arguments of the
            mmengine file backend, as in ``LoadImageFromFile``. Defaults to
            None (local files).

    Raises:
        ValueError: When transforming, if pycocotools or Pillow cannot decode
            the mask, or its size differs from the image size without
            ``resize_mask`` (the message names ``img_path`` and ``ref_id``).
        KeyError: If ``ori_shape`` is missing, or both ``segmentation`` and
            ``seg_map_path`` are.
        FileNotFoundError: If the mask file does not exist.
    """

    def __init__(self,
                 mask_threshold: float = 0,
                 backend_args: Optional[dict] = None) -> None:
        self.mask_threshold = mask_threshold
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        """Decode the mask.

        Args:
            results (dict): Result dict from the dataset / previous
                transforms.

        Returns:
            dict: ``results`` with ``gt_seg_map`` and ``seg_fields`` set.
        """
        where = f'{results.get("img_path")} (ref_id {results.get("ref_id")})'
        if 'ori_shape' not in results:
            raise KeyError(f'{where}: LoadRefSegAnnotations needs '
                           "results['ori_shape']")
        height, width = (int(s) for s in results['ori_shape'][:2])
        segmentation = results.get('segmentation')
        if segmentation is not None:
            mask = decode_segmentation(segmentation, height, width, where)
        elif results.get('seg_map_path') is not None:
            mask = read_mask_file(results['seg_map_path'], where,
                                  self.mask_threshold, self.backend_args)
        else:
            raise KeyError(f'{where}: LoadRefSegAnnotations needs '
                           "results['segmentation'] (RLE / polygons) or "
                           "results['seg_map_path'] (a mask file)")
        if mask.shape != (height, width):
            if not results.get('resize_mask', False):
                raise ValueError(
                    f'{where}: mask size (h, w) {mask.shape} differs from '
                    f'the image size {(height, width)}; only a sample its '
                    'dataset accepted within size_tolerance (resize_mask='
                    'True) is resized')
            mask = resize_mask(mask, (height, width))
        results['gt_seg_map'] = mask
        seg_fields = results.setdefault('seg_fields', [])
        if 'gt_seg_map' not in seg_fields:
            seg_fields.append('gt_seg_map')
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}('
                f'mask_threshold={self.mask_threshold}, '
                f'backend_args={self.backend_args})')
