# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Render referring segmentation samples after the data pipeline to PNGs.

Each picture shows the image with the ground-truth mask (green overlay and
contour), the referring expression and the sample's ids on a dark banner.
Example::

    python tools/analysis_tools/browse_dataset.py \\
        configs/rsrefseg_tiny_synthetic.py --split val \\
        --output-dir work_dirs/browse_dataset --show-number 20

Modified from mmsegmentation's ``tools/analysis_tools/browse_dataset.py``
(Apache-2.0).
"""
import argparse
import os.path as osp

import mmcv
import mmengine
import numpy as np
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmengine.utils import ProgressBar

import mmrsrefseg  # noqa: F401  (registers the datasets and the visualiser)

#: The dataloader a split's dataset config comes from; any other split
#: (e.g. the synthetic ``control``) uses the test dataloader.
SPLIT_LOADERS = dict(
    train='train_dataloader', val='val_dataloader', test='test_dataloader')


def parse_args(argv=None):
    """Parse the command line.

    Args:
        argv (list[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        argparse.Namespace: ``config``, ``split``, ``output_dir``,
        ``show_number``, ``opacity``, ``min_size``, ``cfg_options``.
    """
    parser = argparse.ArgumentParser(
        description='Render referring segmentation samples as the model '
        'gets them (after the split\'s data pipeline): image, ground-truth '
        'mask overlay, referring expression and ref id, one PNG each.')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--split',
        default='train',
        help='split to browse: train / val / test take the dataset and '
        'pipeline of train_dataloader / val_dataloader / test_dataloader; '
        'any other name (e.g. control) uses test_dataloader with '
        'dataset.split set to it. Default: train')
    parser.add_argument(
        '--output-dir',
        default='work_dirs/browse_dataset',
        help='folder of the pictures, written as '
        '{index:05d}_ref{ref_id}[_sent{sent_id}].png; default: '
        'work_dirs/browse_dataset')
    parser.add_argument(
        '--show-number',
        type=int,
        default=None,
        help='render the first N samples only (default: all)')
    parser.add_argument(
        '--opacity',
        type=float,
        default=0.5,
        help='opacity of the mask colour in [0, 1]; default: 0.5')
    parser.add_argument(
        '--min-size',
        type=int,
        default=512,
        help='enlarge pictures whose shorter side is below this many pixels '
        '(image bilinear, mask nearest) so that the text is legible; 0 '
        'keeps the size; default: 512')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs, e.g. '
        'train_dataloader.dataset.data_root=data/rrsisd')
    args = parser.parse_args(argv)
    if args.show_number is not None and args.show_number < 1:
        parser.error(f'--show-number must be >= 1, got {args.show_number}')
    if not 0.0 <= args.opacity <= 1.0:
        parser.error(f'--opacity must lie in [0, 1], got {args.opacity}')
    if args.min_size < 0:
        parser.error(f'--min-size must be >= 0, got {args.min_size}')
    return args


def build_split_dataset(cfg: Config, split: str):
    """Build the dataset of ``split`` with its pipeline.

    Args:
        cfg (Config): The config.
        split (str): ``train``, ``val``, ``test`` or another split of the
            test dataset (its ``split`` field is set to it).

    Returns:
        BaseDataset: The dataset.

    Raises:
        KeyError: If the config has no such dataloader.
        ValueError: If another split is asked of a dataset config without
            a ``split`` field.
    """
    from mmseg.registry import DATASETS
    loader_key = SPLIT_LOADERS.get(split, 'test_dataloader')
    if cfg.get(loader_key) is None:
        raise KeyError(f'{loader_key} is not in the config')
    dataset_cfg = cfg[loader_key].dataset.copy()
    if 'split' in dataset_cfg:
        dataset_cfg.split = split
    elif split not in SPLIT_LOADERS:
        raise ValueError(
            f'{loader_key}.dataset ({dataset_cfg.get("type")}) has no '
            f'"split" field, so split {split!r} cannot be selected')
    return DATASETS.build(dataset_cfg)


def render_sample(visualizer, item: dict, opacity: float, min_size: int = 0):
    """Draw one packed sample.

    The image is the pipeline's (``inputs``, BGR (3, H, W) uint8). When the
    ground truth is at another size, which test pipelines do on purpose
    (they load it after ``Resize``, at the original resolution where the
    metric is computed), the original image is read from ``img_path``
    instead, so the picture shows the evaluated mask at full resolution.
    Pictures whose shorter side is below ``min_size`` are enlarged (image
    bilinear, mask nearest) so that the text stays legible.

    Args:
        visualizer (RefSegLocalVisualizer): The drawer.
        item (dict): ``inputs`` and ``data_samples`` from the dataset.
        opacity (float): Mask opacity in [0, 1].
        min_size (int): Smallest shorter side of the picture in pixels.
            Defaults to 0 (never enlarge).

    Returns:
        np.ndarray: RGB uint8 picture (H', W', 3), the ground truth's size
        or larger.

    Raises:
        ValueError: If the ground truth matches neither the pipeline image
            nor the original image.
    """
    sample = item['data_samples']
    meta = sample.metainfo
    image = np.ascontiguousarray(item['inputs'].permute(1, 2,
                                                        0).numpy()[..., ::-1])
    gt = sample.gt_sem_seg.data[0].numpy()
    if gt.shape != image.shape[:2]:
        if tuple(meta.get('ori_shape', ())) != gt.shape or \
                not meta.get('img_path'):
            raise ValueError(
                f'ref {meta.get("ref_id")}: ground truth {gt.shape} is '
                f'neither at the pipeline image size {image.shape[:2]} nor '
                f'at the original size {meta.get("ori_shape")}')
        image = mmcv.imread(meta['img_path'], channel_order='rgb')
        if image.shape[:2] != gt.shape:
            raise ValueError(f'{meta["img_path"]}: image {image.shape[:2]} '
                             f'!= ground truth {gt.shape}')
    if min(gt.shape) < min_size:
        factor = min_size / min(gt.shape)
        size = (int(round(gt.shape[1] * factor)),
                int(round(gt.shape[0] * factor)))
        image = mmcv.imresize(image, size, interpolation='bilinear')
        gt = mmcv.imresize(gt, size, interpolation='nearest')
    ids = ', '.join(f'{label} {meta[k]}'
                    for k, label in (('ref_id', 'ref'), ('sent_id', 'sent'),
                                     ('image_id', 'image'), ('category_id',
                                                             'category'))
                    if meta.get(k) is not None)
    return visualizer.draw_overlay(
        image,
        gt == 1,
        color=visualizer.gt_color,
        opacity=opacity,
        text=[f'"{meta.get("text", "")}"', ids])


def main(argv=None):
    """Render the samples; return the written file paths."""
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    from mmseg.registry import VISUALIZERS
    dataset = build_split_dataset(cfg, args.split)
    visualizer = VISUALIZERS.build(
        dict(type='RefSegLocalVisualizer', name='browse_dataset'))
    num = len(dataset) if args.show_number is None else min(
        args.show_number, len(dataset))
    mmengine.mkdir_or_exist(args.output_dir)
    written = []
    progress = ProgressBar(num)
    for index in range(num):
        item = dataset[index]
        meta = item['data_samples'].metainfo
        name = f'{index:05d}_ref{meta.get("ref_id")}'
        if meta.get('sent_id') is not None:
            name += f'_sent{meta["sent_id"]}'
        out_file = osp.join(args.output_dir, name + '.png')
        picture = render_sample(visualizer, item, args.opacity, args.min_size)
        mmcv.imwrite(mmcv.rgb2bgr(picture), out_file)
        written.append(out_file)
        progress.update()
    print(f'\n{len(written)} pictures of split {args.split!r} in '
          f'{args.output_dir}')
    return written


if __name__ == '__main__':
    main()
