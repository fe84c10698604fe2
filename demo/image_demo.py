# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Segment the object a referring expression describes in one image.

Writes an overlay picture (the image with the predicted mask in colour, its
contour and the expression on a dark banner at the top, at the image's own
size) and the binary mask (single-channel PNG, 0 / 255, at the image's
size). With ``--show-activation`` the picture shows, side by side under the
expression, the mask overlay and the model's activation maps as heat maps
over the image: for RSRefSeg the global activation ``sigmoid(Z_g)`` and the
mean local activation, for RSRefSeg 2 the dense-prompt activation (the
sigmoid of the mask prompt SAM 2.1 gets). Example::

    python demo/image_demo.py \\
        ../shared/data/rrsisd_sample/images/rrsisd/JPEGImages/11765.jpg \\
        "A airplane at the bottom" configs/rsrefseg_tiny_synthetic.py \\
        --checkpoint work_dirs/rsrefseg_tiny_synthetic/best_mIoU.pth \\
        --device cpu --out-file overlay.png --out-mask mask.png

Modified from mmsegmentation's ``demo/image_demo.py`` (Apache-2.0).
"""
import argparse

import mmcv
import numpy as np
from mmengine.config import Config, DictAction

from mmrsrefseg.apis import RefSegInferencer, read_image_file
from mmrsrefseg.visualization import ACTIVATION_FIELDS


def parse_args(argv=None):
    """Parse the command line.

    Args:
        argv (list[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        argparse.Namespace: ``image``, ``text``, ``config``, ``checkpoint``,
        ``device``, ``out_file``, ``out_mask``, ``opacity``,
        ``show_activation``, ``cfg_options``.

    Raises:
        SystemExit: For ``--help`` (code 0), and with an argparse message
            (code 2) for an ``--opacity`` outside [0, 1] or an empty
            expression.
    """
    parser = argparse.ArgumentParser(
        description='Referring segmentation of one image with RSRefSeg or '
        'RSRefSeg 2: writes a colour overlay of the predicted mask with the '
        'expression written on it, and the binary mask, both at the image '
        'size.')
    parser.add_argument(
        'image',
        help='input image file (any format cv2 '
        'reads: JPEG, PNG, TIFF, ...)')
    parser.add_argument(
        'text',
        help='referring expression, quoted, e.g. "the white storage tank on '
        'the left"')
    parser.add_argument(
        'config',
        help='model config, e.g. configs/rsrefseg_vitb.py or '
        'configs/rsrefseg2_rrsisd.py')
    parser.add_argument(
        '--checkpoint',
        required=True,
        help='trained checkpoint (.pth, from tools/train.py)')
    parser.add_argument(
        '--device',
        default=None,
        help="device, e.g. 'cpu', 'cuda' or 'cuda:1' (default: cuda when "
        'available, else cpu)')
    parser.add_argument(
        '--out-file',
        default='overlay.png',
        help='overlay picture to write (RGB, image size: mask in colour '
        'with the given opacity, its contour, the expression on a dark '
        'banner at the top); default: overlay.png')
    parser.add_argument(
        '--out-mask',
        default='mask.png',
        help='binary mask to write (single-channel PNG at the image size, '
        '255 = referred object, 0 = background); default: mask.png')
    parser.add_argument(
        '--opacity',
        type=float,
        default=0.5,
        help='opacity of the mask colour in the overlay, in [0, 1] '
        '(0: image only, 1: solid colour); default: 0.5')
    parser.add_argument(
        '--show-activation',
        action='store_true',
        help='write, instead of the plain overlay, the overlay beside the '
        "model's activation maps as heat maps over the image (0 blue to 1 "
        'red), with titles and the expression: RSRefSeg: the global '
        'activation sigmoid(Z_g) and the mean local activation (3 x the '
        'image width plus a header); RSRefSeg 2: the dense-prompt '
        'activation, sigmoid of the mask prompt (2 x the image width)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs, e.g. '
        'model.backbone.tokenizer=checkpoints/siglip-so400m-patch14-384 '
        '(the tokenizer directory must exist at inference)')
    args = parser.parse_args(argv)
    if not 0.0 <= args.opacity <= 1.0:
        parser.error(f'--opacity must lie in [0, 1], got {args.opacity}')
    if not args.text.strip():
        parser.error(f'the referring expression is empty: {args.text!r}')
    return args


def main(argv=None):
    """Run the demo; print where the files went and the mask's size.

    The image is read, and checked, before the model is built.

    Args:
        argv (list[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        dict: ``mask`` (uint8 (H, W) in {0, 1}), ``probability`` (float32
        (H, W) in [0, 1]) and ``overlay`` (the picture written, RGB uint8
        (H, W, 3), or (H + header, (1 + k) W, 3) with
        ``--show-activation`` and k activation maps); with
        ``--show-activation`` also each activation map under its field name
        (RSRefSeg: ``global_activation`` and ``mean_local_activation``;
        RSRefSeg 2: ``dense_prompt_activation``; float32 (H, W) in [0, 1]).

    Raises:
        FileNotFoundError: If the image, config or checkpoint is missing.
        ValueError: If the image file is empty (0 bytes) or does not decode
            (not an image, corrupt or truncated), naming the file.
        SystemExit: For bad arguments (see :func:`parse_args`).
    """
    args = parse_args(argv)
    # read (and so check) the image before the model is built: a missing,
    # empty or undecodable file is an error naming it, at once
    image = mmcv.bgr2rgb(read_image_file(args.image))
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    inferencer = RefSegInferencer(
        cfg, weights=args.checkpoint, device=args.device)
    # the RGB array: the same prediction as the file (see RefSegInferencer)
    result = inferencer(
        image, args.text, return_activations=args.show_activation)
    mask = result['masks'][0]
    out = dict(mask=mask, probability=result['probabilities'][0])
    if args.show_activation:
        activations = {
            key: result[key + 's'][0]
            for key in ACTIVATION_FIELDS if key + 's' in result
        }
        out.update(activations)
        overlay = inferencer.visualizer.render_activations(
            image, mask, activations, text=args.text, opacity=args.opacity)
    else:
        overlay = inferencer.visualizer.draw_overlay(
            image, mask, opacity=args.opacity, text=args.text)
    mmcv.imwrite(mmcv.rgb2bgr(overlay), args.out_file)
    mmcv.imwrite((mask * 255).astype(np.uint8), args.out_mask)
    h, w = mask.shape
    print(f'"{args.text}": {int(mask.sum())} of {h * w} pixels '
          f'({100. * mask.mean():.2f} %) segmented')
    what = 'overlay + activation maps' if args.show_activation else 'overlay'
    print(f'{what} ({overlay.shape[1]}x{overlay.shape[0]}): {args.out_file}')
    print(f'mask ({w}x{h}, 0/255): {args.out_mask}')
    out['overlay'] = overlay
    return out


if __name__ == '__main__':
    main()
