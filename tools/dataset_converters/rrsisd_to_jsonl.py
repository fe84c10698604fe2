# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Convert RRSIS-D's native refs + instances into the authors' JSONL form.

Writes ``OUT_DIR/rrsisd_{split}.jsonl`` for every split of the refs file, one
line per referring expression with exactly the fields of the RSRefSeg
reference ``datainfo/rrsisd_*.jsonl`` files, in this order: ``split,
image_id, sent, file_name, category_id, category_name, ann_id, bbox,
segmentation, area`` (ids as int, ``bbox`` / ``segmentation`` / ``area`` as
stored in ``instances.json``). Lines follow the order of the refs file. The
result loads with ``RefSegJsonlDataset``.

Example::

    python tools/dataset_converters/rrsisd_to_jsonl.py data/rrsisd \\
        data/rrsisd/datainfo
"""
import argparse
import json
import os
import os.path as osp
from collections import defaultdict
from typing import Dict, List, Optional

import mmengine

from mmrsrefseg.datasets.utils import join_rrsisd_ref, load_rrsisd_index

#: The field order of the authors' JSONL lines.
JSONL_FIELDS = ('split', 'image_id', 'sent', 'file_name', 'category_id',
                'category_name', 'ann_id', 'bbox', 'segmentation', 'area')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (list[str], optional): Arguments; None reads ``sys.argv``.

    Returns:
        argparse.Namespace: ``data_root``, ``out_dir``, ``ann_file``,
        ``instances_file``.
    """
    parser = argparse.ArgumentParser(
        description='Convert RRSIS-D (refs(unc).p + instances.json) into '
        'the RSRefSeg JSONL form rrsisd_{split}.jsonl')
    parser.add_argument('data_root', help='RRSIS-D root folder')
    parser.add_argument('out_dir', help='folder for rrsisd_{split}.jsonl')
    parser.add_argument(
        '--ann-file',
        default='rrsisd/refs(unc).p',
        help='refs pickle, relative to DATA_ROOT (default: %(default)s)')
    parser.add_argument(
        '--instances-file',
        default='rrsisd/instances.json',
        help='instances.json, relative to DATA_ROOT (default: %(default)s)')
    return parser.parse_args(argv)


def convert_rrsisd_to_jsonl(
        data_root: str,
        out_dir: str,
        ann_file: str = 'rrsisd/refs(unc).p',
        instances_file: str = 'rrsisd/instances.json') -> Dict[str, int]:
    """Write one ``rrsisd_{split}.jsonl`` per split.

    Args:
        data_root (str): RRSIS-D root.
        out_dir (str): Output folder, created if needed.
        ann_file (str): Refs pickle relative to ``data_root``.
        instances_file (str): ``instances.json`` relative to ``data_root``.

    Returns:
        dict[str, int]: Number of lines written per split.

    Raises:
        ValueError: If a ref is malformed, refers to an unknown
            ``ann_id`` / ``image_id`` / category, lacks ``split`` or a
            sentence lacks ``sent`` (the message names the file and ref id).
    """
    index = load_rrsisd_index(
        osp.join(data_root, ann_file), osp.join(data_root, instances_file))
    lines: Dict[str, List[str]] = defaultdict(list)
    progress = mmengine.ProgressBar(len(index['refs']))
    for position, ref in enumerate(index['refs']):
        joined = join_rrsisd_ref(ref, position, index)
        where = joined['where']
        split = joined['split']
        if not isinstance(split, str) or not split:
            raise ValueError(f'{where}: missing or malformed split {split!r}')
        if joined['category_id'] not in index['cats']:
            raise ValueError(f'{where}: unknown category_id '
                             f'{joined["category_id"]} (not in '
                             f'{index["instances_file"]})')
        ann = joined['ann']
        for field in ('bbox', 'segmentation', 'area'):
            if field not in ann:
                raise ValueError(f'{where}: annotation {joined["ann_id"]} '
                                 f'lacks {field!r}')
        for sent in joined['texts']:
            if not isinstance(sent, str):
                raise ValueError(f'{where}: sentence without a str "sent"')
            record = dict(
                split=split,
                image_id=joined['image_id'],
                sent=sent,
                file_name=joined['file_name'],
                category_id=joined['category_id'],
                category_name=index['cats'][joined['category_id']],
                ann_id=joined['ann_id'],
                bbox=ann['bbox'],
                segmentation=ann['segmentation'],
                area=ann['area'])
            lines[split].append(json.dumps(record))
        progress.update()
    os.makedirs(out_dir, exist_ok=True)
    for split, split_lines in lines.items():
        with open(osp.join(out_dir, f'rrsisd_{split}.jsonl'), 'w') as f:
            f.write('\n'.join(split_lines) + '\n')
    return {split: len(split_lines) for split, split_lines in lines.items()}


def main(argv: Optional[List[str]] = None) -> None:
    """Command-line entry point."""
    args = parse_args(argv)
    counts = convert_rrsisd_to_jsonl(args.data_root, args.out_dir,
                                     args.ann_file, args.instances_file)
    mmengine.print_log(
        'wrote ' + ', '.join(f'rrsisd_{split}.jsonl ({n} lines)'
                             for split, n in counts.items()) +
        f' to {args.out_dir}',
        logger='current')


if __name__ == '__main__':
    main()
