# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Convert an HF ``SamModel`` directory into a segment-anything ``.pth``.

The RSRefSeg authors load SAM from HF-format directories (e.g.
``KyanChen/sam-vit-base``); mmrsrefseg reads those directly too
(``model.decode_head.checkpoint=DIR``), or once converted with this tool
into the official segment-anything layout (``sam_vit_b_01ec64.pth`` keys).

Example::

    python tools/model_converters/sam_hf2pth.py checkpoints/sam-vit-base \
        checkpoints/sam_vit_b_from_hf.pth
"""
import argparse
import json
import os
import os.path as osp

import torch

from mmrsrefseg.utils.sam_checkpoint import read_sam_state_dict


def parse_args():
    parser = argparse.ArgumentParser(
        description='Convert an HF SamModel save_pretrained directory into '
        'a segment-anything state dict (.pth, official key names).')
    parser.add_argument('src', help='HF SamModel directory')
    parser.add_argument('dst', help='output .pth file')
    return parser.parse_args()


def convert(src: str, dst: str) -> dict:
    """Convert ``src`` (HF SAM directory) into ``dst`` (segment-anything).

    ``pixel_mean`` / ``pixel_std`` (0-255) come from the directory's
    ``preprocessor_config.json`` when present, else SAM's defaults.

    Returns:
        dict: The saved state dict.

    Raises:
        ValueError: If ``src`` is not an HF SAM directory, or its
            ``config.json`` / ``preprocessor_config.json`` is not valid
            (the message names the file).
        FileNotFoundError: If ``src`` has no ``config.json``.
        StateDictError: If the weights lack a tensor of the ``config.json``
            architecture, or hold one of another shape (named).
    """
    if not osp.isdir(src):
        raise ValueError(f'{src} is not a directory (an HF SamModel '
                         'save_pretrained directory is expected)')
    state = read_sam_state_dict(src)  # checks config.json's model_type
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    proc = osp.join(src, 'preprocessor_config.json')
    if osp.isfile(proc):
        try:
            with open(proc, encoding='utf-8') as f:
                proc_cfg = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f'{proc}: not valid UTF-8 JSON ({e})') from e
        if not isinstance(proc_cfg, dict):
            raise ValueError(f'{proc}: holds a {type(proc_cfg).__name__}, '
                             'not a JSON object')
        mean = proc_cfg.get('image_mean', mean)
        std = proc_cfg.get('image_std', std)
    state['pixel_mean'] = torch.tensor(mean) * 255.
    state['pixel_std'] = torch.tensor(std) * 255.
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save(state, dst)
    return state


def main():
    args = parse_args()
    state = convert(args.src, args.dst)
    print(f'wrote {len(state)} tensors to {args.dst}')


if __name__ == '__main__':
    main()
