# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Convert RefSegRS / RISBench (native phrase-file layout) into JSONL.

Reads ``DATA_ROOT/output_phrase_{split}.txt`` with :class:`RefSegRSDataset`
(``refsegrs``: ``images/<id>.tif``, ``masks/<id>.tif``) or
:class:`RISBenchDataset` (``risbench``: ``img_rgb/<file>``, ``mask/<file>``),
so every line is validated exactly as when training, decodes every mask file
with the same reader as ``LoadRefSegAnnotations`` (Pillow, object = value >
``--mask-threshold``) and writes ``OUT_DIR/{layout}_{split}.jsonl``, one line
per sample, in the field order of the RSRefSeg ``datainfo/rrsisd_*.jsonl``
files plus the two ids the JSONL form otherwise derives from line numbers::

    split, image_id, sent, file_name, category_id, category_name, ann_id,
    bbox, segmentation, area, ref_id, sent_id

with ``file_name`` relative to the image folder, ``category_id`` /
``category_name`` null (the native layouts carry no category), ``bbox`` the
mask extent ``[x1, y1, x2, y2]`` in inclusive pixel coordinates (``[0, 0, 0,
0]`` for an empty mask), ``segmentation`` a list holding one COCO compressed
RLE ``{"size": [h, w], "counts": str}`` (pycocotools) and ``area`` the number
of mask pixels. The result loads with ``RefSegJsonlDataset`` (``data_prefix``
``img_path='images'`` for RefSegRS, ``'img_rgb'`` for RISBench) and gives the
same samples and masks as the native dataset.

Example::

    python tools/dataset_converters/phrase_txt_to_jsonl.py refsegrs \\
        data/refsegrs data/refsegrs/datainfo
    python tools/dataset_converters/phrase_txt_to_jsonl.py risbench \\
        data/risbench data/risbench/datainfo --splits train val test
"""
import argparse
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import mmengine
import numpy as np
from pycocotools import mask as mask_utils

from mmrsrefseg.datasets import RefSegRSDataset, RISBenchDataset
from mmrsrefseg.datasets.utils import read_mask_file

#: Dataset class of each layout.
LAYOUTS = dict(refsegrs=RefSegRSDataset, risbench=RISBenchDataset)

#: The field order of the JSONL lines.
JSONL_FIELDS = ('split', 'image_id', 'sent', 'file_name', 'category_id',
                'category_name', 'ann_id', 'bbox', 'segmentation', 'area',
                'ref_id', 'sent_id')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (list[str], optional): Arguments; None reads ``sys.argv``.

    Returns:
        argparse.Namespace: ``layout``, ``data_root``, ``out_dir``,
        ``splits``, ``mask_threshold``.
    """
    parser = argparse.ArgumentParser(
        description='Convert RefSegRS / RISBench (output_phrase_{split}.txt '
        '+ image and mask folders) into the RSRefSeg JSONL form '
        '{layout}_{split}.jsonl')
    parser.add_argument(
        'layout', choices=sorted(LAYOUTS), help='native dataset layout')
    parser.add_argument('data_root', help='dataset root folder')
    parser.add_argument('out_dir', help='folder for {layout}_{split}.jsonl')
    parser.add_argument(
        '--splits',
        nargs='+',
        default=['train', 'val', 'test'],
        help='splits to convert, read from output_phrase_{split}.txt '
        '(default: %(default)s)')
    parser.add_argument(
        '--mask-threshold',
        type=float,
        default=0,
        help='mask pixels with a value above it are the object '
        '(default: %(default)s)')
    return parser.parse_args(argv)


def mask_to_annotation(mask: np.ndarray) -> dict:
    """COCO RLE, extent and area of a binary mask.

    Args:
        mask (np.ndarray): uint8 mask of shape (H, W), values in {0, 1}.

    Returns:
        dict: ``bbox`` ([x1, y1, x2, y2], inclusive pixel coordinates, all 0
        for an empty mask), ``segmentation`` (a list holding one RLE dict
        with an ASCII ``counts`` str) and ``area`` (int, pixels).
    """
    rle = mask_utils.encode(np.asfortranarray(mask))
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size:
        bbox = [int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])]
    else:
        bbox = [0, 0, 0, 0]
    return dict(
        bbox=bbox,
        segmentation=[
            dict(
                size=[int(s) for s in rle['size']],
                counts=rle['counts'].decode('ascii'))
        ],
        area=int(mask.sum()))


def convert_phrase_txt_to_jsonl(layout: str,
                                data_root: str,
                                out_dir: str,
                                splits: Sequence[str] = ('train', 'val',
                                                         'test'),
                                mask_threshold: float = 0) -> Dict[str, int]:
    """Write one ``{layout}_{split}.jsonl`` per split.

    Args:
        layout (str): ``'refsegrs'`` or ``'risbench'``.
        data_root (str): Dataset root.
        out_dir (str): Output folder, created if needed.
        splits (Sequence[str]): Splits, read from
            ``output_phrase_{split}.txt``.
        mask_threshold (float): Mask pixels with a greater value are the
            object.

    Returns:
        dict[str, int]: Number of lines written per split.

    Raises:
        ValueError: For an unknown layout or an invalid line (the message
            names the phrase file, line and id).
        FileNotFoundError: For a missing phrase file, image or mask.
    """
    if layout not in LAYOUTS:
        raise ValueError(f'unknown layout {layout!r}; choose one of '
                         f'{sorted(LAYOUTS)}')
    os.makedirs(out_dir, exist_ok=True)
    counts = {}
    for split in splits:
        dataset = LAYOUTS[layout](
            data_root=data_root,
            ann_file=f'output_phrase_{split}.txt',
            serialize_data=False)
        img_dir = dataset.data_prefix['img_path']
        lines = []
        progress = mmengine.ProgressBar(len(dataset))
        for idx in range(len(dataset)):
            info = dataset.get_data_info(idx)
            where = f'{dataset.ann_file} (ref_id {info["ref_id"]})'
            mask = read_mask_file(info['seg_map_path'], where, mask_threshold)
            ann = mask_to_annotation(mask)
            record = dict(
                split=split,
                image_id=info['image_id'],
                sent=info['text'],
                file_name=osp.relpath(info['img_path'], img_dir),
                category_id=None,
                category_name=None,
                ann_id=info['ann_id'],
                **ann,
                ref_id=info['ref_id'],
                sent_id=info['sent_id'])
            lines.append(json.dumps({k: record[k] for k in JSONL_FIELDS}))
            progress.update()
        with open(osp.join(out_dir, f'{layout}_{split}.jsonl'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
        counts[split] = len(lines)
    return counts


def main(argv: Optional[List[str]] = None) -> None:
    """Command-line entry point."""
    args = parse_args(argv)
    counts = convert_phrase_txt_to_jsonl(args.layout, args.data_root,
                                         args.out_dir, args.splits,
                                         args.mask_threshold)
    mmengine.print_log(
        'wrote ' + ', '.join(f'{args.layout}_{split}.jsonl ({n} lines)'
                             for split, n in counts.items()) +
        f' to {args.out_dir}',
        logger='current')


if __name__ == '__main__':
    main()
