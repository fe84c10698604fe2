# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Web demo of RSRefSeg and RSRefSeg 2 (Gradio): image + expression -> mask.

A page where one uploads an aerial image (or picks an example of the
config's test split), types a referring expression and sees the predicted
mask over the image, the mask probability and the model's activation maps,
all as pictures at the image's size: for RSRefSeg the global activation
``sigmoid(Z_g)`` and the mean local activation, for RSRefSeg 2 the
dense-prompt activation (the sigmoid of the mask prompt SAM 2.1 gets). One
process serves one model.

On the embedded defaults, from the repository root, after
``bash tools/quickstart.sh`` (RSRefSeg) or ``MODEL=rsrefseg2 bash
tools/quickstart.sh`` (RSRefSeg 2)::

    python demo/web_demo.py                     # http://127.0.0.1:7860
    python demo/web_demo.py --model rsrefseg2

Any config and checkpoint::

    python demo/web_demo.py configs/rsrefseg_vitb.py \\
        --checkpoint work_dirs/rsrefseg_vitb/best_mIoU_epoch_200.pth \\
        --host 0.0.0.0 --port 7860

``http://HOST:PORT/?example=N`` opens the page with example ``N`` (0-based)
already segmented. Inputs the model cannot take as they are get converted,
and the page says how: grayscale and palette images to RGB, an alpha channel
dropped, 16-bit / 32-bit / float images stretched to 8 bit between their
2nd and 98th percentiles, images larger than ``--max-side`` downscaled
(the model sees them at its input size, e.g. 1024 x 1024, anyway). Images
above ``--max-pixels``, files that are not images (or are empty, corrupt or
truncated) and empty expressions get the demo's own message on the page,
naming the file as it was uploaded; an expression longer than the text
encoder's token limit is segmented from its beginning, and the status line
says so.
"""
import argparse
import glob
import os
import os.path as osp
import threading
import time
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import gradio as gr
import numpy as np
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.registry import init_default_scope
from PIL import Image, ImageOps, UnidentifiedImageError

from mmrsrefseg.apis import RefSegInferencer
from mmrsrefseg.visualization import ACTIVATION_TITLES, ActivationRecorder

#: ``--model`` -> (embedded default config, command that trains it).
DEMO_MODELS = {
    'rsrefseg':
    ('configs/rsrefseg_tiny_synthetic.py', 'bash tools/quickstart.sh'),
    'rsrefseg2': ('configs/rsrefseg2_tiny_synthetic.py',
                  'MODEL=rsrefseg2 bash tools/quickstart.sh'),
}
DEFAULT_CONFIG = DEMO_MODELS['rsrefseg'][0]
#: Percentiles of the linear stretch of high-bit-depth images to 8 bit.
STRETCH_PERCENTILES = (2., 98.)
#: PIL modes of single-band images with more than 8 bits.
_HIGH_DEPTH_MODES = ('I', 'I;16', 'I;16B', 'I;16L', 'I;16N', 'F')
#: Result pictures fill their boxes (small images are scaled up).
_CSS = '.result img { width: 100%; height: 100%; object-fit: contain; }'
#: Titles of the result pictures before the activation maps.
_MASK_TITLES = ('mask overlay', 'mask probability')


def default_checkpoint(config: str) -> str:
    """The newest ``work_dirs/{config stem}/best_*.pth``.

    That is where ``tools/train.py`` (and so ``tools/quickstart.sh`` for
    the embedded defaults, :data:`DEMO_MODELS`) keeps the best checkpoint.

    Args:
        config (str): Config file path.

    Returns:
        str: Checkpoint path.

    Raises:
        FileNotFoundError: If there is none.
    """
    stem = osp.splitext(osp.basename(config))[0]
    pattern = osp.join('work_dirs', stem, 'best_*.pth')
    found = sorted(glob.glob(pattern), key=osp.getmtime)
    if not found:
        trains = {
            osp.splitext(osp.basename(c))[0]: command
            for c, command in DEMO_MODELS.values()
        }
        hint = (f'run `{trains[stem]}` first (it trains the embedded '
                'default)'
                if stem in trains else 'train one with tools/train.py')
        raise FileNotFoundError(
            f'No checkpoint given and none found at {pattern} (relative to '
            f'{os.getcwd()}); pass --checkpoint CKPT or {hint}')
    return found[-1]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (list[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        argparse.Namespace: ``config`` (the ``--model`` default when not
        given), ``model``, ``checkpoint``, ``device``, ``host``, ``port``,
        ``max_side``, ``max_pixels``, ``num_examples``, ``max_file_size``,
        ``cfg_options``.

    Raises:
        SystemExit: With an argparse message (code 2) for a config given
            together with ``--model``, or an option out of range.
    """
    parser = argparse.ArgumentParser(
        description='Web demo of RSRefSeg / RSRefSeg 2: upload an aerial '
        'image, type a referring expression, see the mask, its probability '
        'and the activation maps.')
    parser.add_argument(
        'config',
        nargs='?',
        default=None,
        help='model config (default: the embedded default of --model)')
    parser.add_argument(
        '--model',
        choices=sorted(DEMO_MODELS),
        default=None,
        help='serve the embedded default of this model instead of a '
        'config: ' + '; '.join(f'{name}: {config}'
                               for name, (config, _) in DEMO_MODELS.items()) +
        ' (default: rsrefseg)')
    parser.add_argument(
        '--checkpoint',
        default=None,
        help='trained checkpoint (default: the newest '
        'work_dirs/{config stem}/best_*.pth, which tools/quickstart.sh '
        'writes for the embedded defaults)')
    parser.add_argument(
        '--device',
        default=None,
        help="'cpu', 'cuda', 'cuda:1', ... (default: cuda when available)")
    parser.add_argument(
        '--host',
        default='127.0.0.1',
        help='address to serve on (default: 127.0.0.1, this machine only; '
        '0.0.0.0 for every interface)')
    parser.add_argument(
        '--port', type=int, default=7860, help='port (default: 7860)')
    parser.add_argument(
        '--max-side',
        type=int,
        default=2048,
        help='larger images are downscaled (area interpolation) to this '
        'longer side before segmentation and display (default: 2048)')
    parser.add_argument(
        '--max-pixels',
        type=float,
        default=64e6,
        help='images with more pixels are refused with a message (default: '
        '64e6)')
    parser.add_argument(
        '--max-file-size',
        default='200mb',
        help="largest upload, e.g. '200mb' (default: 200mb)")
    parser.add_argument(
        '--num-examples',
        type=int,
        default=6,
        help='examples from the config\'s test split (at most 2 '
        'expressions per image; 0: none; default: 6)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs')
    args = parser.parse_args(argv)
    if args.config is not None and args.model is not None:
        parser.error(f'give a config ({args.config}) or --model '
                     f'{args.model}, not both')
    args.model = args.model or 'rsrefseg'
    args.config = args.config or DEMO_MODELS[args.model][0]
    if args.max_side < 32:
        parser.error(f'--max-side must be >= 32, got {args.max_side}')
    if args.max_pixels < 1:
        parser.error(f'--max-pixels must be >= 1, got {args.max_pixels}')
    if args.num_examples < 0:
        parser.error(f'--num-examples must be >= 0, got {args.num_examples}')
    if not 0 <= args.port <= 65535:
        parser.error(f'--port must lie in [0, 65535], got {args.port}')
    return args


def stretch_to_uint8(
    band: np.ndarray,
    percentiles: Tuple[float, float] = STRETCH_PERCENTILES
) -> Tuple[np.ndarray, float, float]:
    """Linear stretch of a high-bit-depth band to uint8.

    ``lo`` and ``hi`` are the given percentiles of the finite values;
    values map to ``round(255 * (v - lo) / (hi - lo))`` clipped to
    [0, 255]; a band with ``hi == lo`` maps to 0 where ``v <= lo``, else
    255.

    Args:
        band (np.ndarray): (H, W) integer or float array.
        percentiles (tuple[float, float]): Lower and upper percentile.

    Returns:
        tuple: uint8 (H, W) array, ``lo``, ``hi``.

    Raises:
        ValueError: If the band holds no finite value.
    """
    values = band.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        raise ValueError('The image holds no finite pixel value')
    lo, hi = np.percentile(values[finite], percentiles)
    values = np.where(finite, values, lo)
    if hi > lo:
        scaled = np.round((values - lo) * (255. / (hi - lo)))
    else:
        scaled = np.where(values > lo, 255., 0.)
    return np.clip(scaled, 0, 255).astype(np.uint8), float(lo), float(hi)


def to_rgb_uint8(image: Image.Image) -> Tuple[np.ndarray, List[str]]:
    """Convert a PIL image of any common mode to an RGB uint8 array.

    - ``RGB``: as it is;
    - ``RGBA`` / ``LA`` / ``PA`` / palette with transparency: the alpha
      channel is dropped (colours kept);
    - ``L`` / ``1`` / ``P`` / ``CMYK`` / ``YCbCr`` / ``LAB`` / ``HSV``:
      PIL's conversion to RGB (gray replicated to three channels);
    - ``I;16*`` / ``I`` / ``F`` (16-bit, 32-bit, float gray):
      :func:`stretch_to_uint8`, replicated to three channels.

    Args:
        image (PIL.Image.Image): The image (first frame of multi-frame
            files).

    Returns:
        tuple: RGB uint8 array (H, W, 3) and notes on the conversions made
        (empty for RGB).

    Raises:
        ValueError: For a mode not listed.
    """
    mode = image.mode
    notes: List[str] = []
    if getattr(image, 'n_frames', 1) > 1:
        notes.append(f'first of {image.n_frames} frames used')
    if mode == 'RGB':
        return np.asarray(image, dtype=np.uint8), notes
    if mode in _HIGH_DEPTH_MODES:
        gray, lo, hi = stretch_to_uint8(np.asarray(image))
        notes.append(
            f'{mode} grayscale stretched to 8 bit ({lo:g}..{hi:g}, the '
            f'{STRETCH_PERCENTILES[0]:g}-{STRETCH_PERCENTILES[1]:g} % '
            'percentiles, to 0..255) and replicated to RGB')
        return np.repeat(gray[..., None], 3, axis=2), notes
    if mode in ('RGBA', 'LA', 'PA', 'RGBa',
                'La') or (mode == 'P' and 'transparency' in image.info):
        notes.append(f'{mode} image: alpha channel dropped')
    elif mode in ('L', '1'):
        notes.append(f'{"binary" if mode == "1" else "grayscale"} image '
                     'replicated to RGB')
    elif mode in ('P', 'CMYK', 'YCbCr', 'LAB', 'HSV'):
        notes.append(f'{mode} image converted to RGB')
    else:
        raise ValueError(
            f'Unsupported image mode {mode!r}; use an RGB, grayscale, '
            'palette, RGBA or 16-bit grayscale image (PNG, JPEG, TIFF)')
    return np.asarray(image.convert('RGB'), dtype=np.uint8), notes


def _reason(err: Exception, path: str, name: str) -> str:
    """``err``'s message with the server-side ``path`` shown as ``name``."""
    return str(err).replace(path, name)


def load_rgb(path: str,
             max_side: int = 2048,
             max_pixels: float = 64e6,
             name: Optional[str] = None) -> Tuple[np.ndarray, List[str]]:
    """Read an image file as RGB uint8, converted and downscaled if needed.

    The EXIF orientation is applied; then :func:`to_rgb_uint8`; an image
    whose longer side exceeds ``max_side`` is downscaled (``cv2.INTER_AREA``)
    to that longer side, keeping the aspect ratio. Messages name the file by
    ``name``, never by ``path`` (an upload's path is the server's temporary
    file).

    Args:
        path (str): Image file.
        max_side (int): Longest side in px after loading.
        max_pixels (float): Larger images are refused (before decoding).
        name (str, optional): The file's name for messages, e.g. the
            uploaded file's own name. Defaults to the basename of ``path``.

    Returns:
        tuple: RGB uint8 array (H, W, 3) and notes on what was done.

    Raises:
        ValueError: For a missing or empty (0 bytes) file, a file that is
            not an image or whose pixel data are corrupt or truncated, an
            image above ``max_pixels`` or an unsupported mode (see
            :func:`to_rgb_uint8`).
    """
    name = name or osp.basename(path)
    if not osp.isfile(path):
        raise ValueError(f'Image {name!r} not found')
    if osp.getsize(path) == 0:
        raise ValueError(f'Cannot read {name!r} as an image: it is an empty '
                         'file (0 bytes)')
    try:
        image = Image.open(path)
    except UnidentifiedImageError as err:  # its message holds the path
        raise ValueError(
            f'Cannot read {name!r} as an image: cannot identify image file '
            '(not an image, or a corrupt one; the demo reads PNG, JPEG, '
            'TIFF, BMP, WebP, ...)') from err
    except (OSError, Image.DecompressionBombError) as err:
        raise ValueError(f'Cannot read {name!r} as an image: '
                         f'{_reason(err, path, name)}') from err
    with image:
        w, h = image.size
        if w * h > max_pixels:
            raise ValueError(
                f'{name!r} is {w} x {h} px ({w * h / 1e6:.1f} MP), more than '
                f'this demo takes ({max_pixels / 1e6:.1f} MP); downscale or '
                'crop it first')
        try:
            image = ImageOps.exif_transpose(image)
            rgb, notes = to_rgb_uint8(image)
        except OSError as err:  # truncated or corrupt pixel data
            raise ValueError(f'Cannot decode {name!r}: '
                             f'{_reason(err, path, name)}') from err
    h, w = rgb.shape[:2]
    if max(h, w) > max_side:
        scale = max_side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        notes.append(f'downscaled from {w} x {h} to {size[0]} x {size[1]} '
                     f'px (longer side limit {max_side})')
    return rgb, notes


def examples_from_test_split(cfg: Config,
                             num: int,
                             per_image: int = 2) -> List[List[str]]:
    """``[image path, expression]`` pairs from the config's test split.

    In dataset order, at most ``per_image`` expressions per image.

    Args:
        cfg (Config): Config with ``test_dataloader.dataset``.
        num (int): Number of examples.
        per_image (int): Expressions per image.

    Returns:
        list[list[str]]: Up to ``num`` pairs.

    Raises:
        FileNotFoundError, ValueError: From building the dataset (missing
            or malformed data).
    """
    from mmseg.registry import DATASETS
    if num == 0:
        return []
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    examples, counts = [], {}
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        path, text = info['img_path'], info['text']
        if isinstance(text, (list, tuple)):
            text = text[0]
        if counts.get(path, 0) >= per_image:
            continue
        counts[path] = counts.get(path, 0) + 1
        examples.append([path, text])
        if len(examples) == num:
            break
    return examples


class WebDemo:
    """The page and its callbacks around a :class:`RefSegInferencer`.

    Uploads reach :meth:`segment` as gradio sent them (the events do not
    run gradio's own image preprocessing, which would refuse a bad file
    with its internal message and the server's temporary path): the demo
    decodes them itself (:func:`load_rgb`) and names a bad file by the name
    it was uploaded under.

    The result pictures are the mask overlay, the mask probability and the
    activation maps the model's neck declares (see
    :class:`~mmrsrefseg.visualization.ActivationRecorder`), two per row.

    Args:
        inferencer (RefSegInferencer): The model; its ``model.backbone``
            counts truncated expressions in ``num_truncated`` and has the
            token limit ``max_length`` (:class:`ClipBackbone`).
        examples (list[list[str]]): ``[image path, expression]`` pairs.
        max_side (int): See :func:`load_rgb`.
        max_pixels (float): See :func:`load_rgb`.
        title (str): Line under the page heading (model description).

    Raises:
        TypeError: If the model's backbone does not count truncated
            expressions, or its neck declares no activation maps.
    """

    def __init__(self,
                 inferencer: RefSegInferencer,
                 examples: Sequence[Sequence[str]] = (),
                 max_side: int = 2048,
                 max_pixels: float = 64e6,
                 title: str = '') -> None:
        self.inferencer = inferencer
        self.visualizer = inferencer.visualizer
        self.examples = [list(e) for e in examples]
        self.max_side = max_side
        self.max_pixels = max_pixels
        self.title = title
        #: Data-sample fields of the activation maps shown, in order.
        self.activation_fields = ActivationRecorder(inferencer.model).fields
        self.output_titles = _MASK_TITLES + tuple(
            ACTIVATION_TITLES[k] for k in self.activation_fields)
        self._text_encoder = inferencer.model.backbone
        if not all(
                hasattr(self._text_encoder, a)
                for a in ('num_truncated', 'max_length')):
            raise TypeError(
                'The web demo tells the user when an expression was '
                'truncated, from the backbone\'s num_truncated and max_length '
                f'(ClipBackbone); {type(self._text_encoder).__name__} has '
                'none')
        # gradio runs callbacks in worker threads, one queue per event: the
        # model (and its activation hook) serves one request at a time
        self._lock = threading.Lock()

    @staticmethod
    def _image_file(image: Union[str, dict, None]) -> Tuple[str, str]:
        """Path and name (for messages) of the image input, if any.

        Args:
            image (str | dict, optional): A file path (examples), or an
                upload as gradio sends it: a ``FileData`` dict with the
                server-side ``path`` and the uploaded file's ``orig_name``.

        Returns:
            tuple[str, str]: The path and the name; two empty strings
            without an image.
        """
        if isinstance(image, dict):
            path = image.get('path') or ''
            return path, image.get('orig_name') or osp.basename(path)
        return image or '', osp.basename(image or '')

    def segment(self, image: Union[str, dict, None],
                text: Optional[str]) -> Tuple[Union[np.ndarray, str], ...]:
        """Segment the object ``text`` refers to in the image.

        Args:
            image (str | dict, optional): Image file path, or the upload
                (see :meth:`_image_file`).
            text (str, optional): Referring expression.

        Returns:
            tuple: RGB uint8 (H, W, 3) pictures at the (possibly
            downscaled) image size -- mask overlay, probability and the
            activation maps (:attr:`output_titles`; heat maps over the
            image): four for RSRefSeg, three for RSRefSeg 2 -- and a
            Markdown status line (with a notice when the expression was
            longer than the text encoder's token limit and truncated).

        Raises:
            gradio.Error: Without an image or an expression, or for a file
                that cannot be used (shown on the page, naming the file by
                its uploaded name).
        """
        path, name = self._image_file(image)
        if not path:
            raise gr.Error('Upload an aerial image (or pick an example) '
                           'first.')
        if text is None or not text.strip():
            raise gr.Error('Type a referring expression, e.g. "the red '
                           'storage tank on the left".')
        text = text.strip()
        try:
            rgb, notes = load_rgb(path, self.max_side, self.max_pixels, name)
        except ValueError as err:
            raise gr.Error(str(err)) from err
        with self._lock:
            # requests run one at a time: the count's change is this one's
            truncated = self._text_encoder.num_truncated
            start = time.perf_counter()
            result = self.inferencer(rgb, text, return_activations=True)
            seconds = time.perf_counter() - start
            truncated = self._text_encoder.num_truncated > truncated
        mask = result['masks'][0]
        vis = self.visualizer
        pictures = [
            vis.draw_overlay(rgb, mask),
            vis.draw_heatmap(rgb, result['probabilities'][0])
        ] + [
            vis.draw_heatmap(rgb, result[key + 's'][0])
            for key in self.activation_fields
        ]
        h, w = mask.shape
        status = (f'**"{text}"**: {int(mask.sum())} of {h * w} pixels '
                  f'({100. * mask.mean():.2f} %) segmented in '
                  f'{seconds:.2f} s.')
        if truncated:
            status += (' **Expression truncated**: it is longer than the '
                       f'{self._text_encoder.max_length} tokens the text '
                       'encoder reads; the rest was ignored.')
        if notes:
            status += ' Input: ' + '; '.join(notes) + '.'
        return (*pictures, status)

    def open_example(self, request: gr.Request):
        """Page-load callback: ``?example=N`` runs example N at once.

        Returns:
            tuple: The example's image and expression and
            :meth:`segment`'s outputs, or ``gradio.skip()`` for every
            output without that query parameter.

        Raises:
            gradio.Error: For an ``N`` that names no example.
        """
        params = dict(request.query_params) if request is not None else {}
        if 'example' not in params:
            # image, expression, the pictures and the status line
            return tuple(gr.skip() for _ in range(len(self.output_titles) + 3))
        value = params['example']
        if not value.isdigit() or int(value) >= len(self.examples):
            raise gr.Error(f'?example={value}: there are '
                           f'{len(self.examples)} examples (0-based index)')
        path, text = self.examples[int(value)]
        return (path, text, *self.segment(path, text))

    def build(self) -> gr.Blocks:
        """Lay out the page and wire the callbacks.

        Returns:
            gradio.Blocks: The app (``.launch()`` it).
        """
        with gr.Blocks(
                title=f'{type(self.inferencer.model).__name__} web demo',
                analytics_enabled=False) as demo:
            gr.Markdown(
                '## Referring remote sensing image segmentation\n'
                'Upload an aerial image (or pick an example below), type '
                'what to segment and press **Segment**. Heat maps: 0 blue, '
                '1 red. ' + self.title)
            with gr.Row():
                with gr.Column(scale=1, min_width=300):
                    image_in = gr.Image(
                        type='filepath',
                        image_mode=None,
                        sources=['upload', 'clipboard'],
                        label='aerial image',
                        height=320,
                        elem_id='image')
                    text_in = gr.Textbox(
                        label='referring expression',
                        placeholder='the red storage tank on the left',
                        max_lines=1,
                        elem_id='expression')
                    button = gr.Button(
                        'Segment', variant='primary', elem_id='segment')
                    status = gr.Markdown(elem_id='status')
                with gr.Column(scale=2):
                    outputs = []
                    titles = self.output_titles
                    for row in range(0, len(titles), 2):
                        with gr.Row():
                            for title in titles[row:row + 2]:
                                outputs.append(
                                    gr.Image(
                                        type='numpy',
                                        format='png',
                                        label=title,
                                        interactive=False,
                                        height=300,
                                        elem_classes=['result']))
            outputs.append(status)
            # preprocess=False: segment() reads the upload itself (see the
            # class docstring)
            button.click(
                self.segment, [image_in, text_in],
                outputs,
                api_name='segment',
                concurrency_limit=1,
                preprocess=False)
            text_in.submit(
                self.segment, [image_in, text_in],
                outputs,
                api_name='segment_on_enter',
                api_visibility='private',
                concurrency_limit=1,
                preprocess=False)
            demo.load(
                self.open_example,
                None, [image_in, text_in] + outputs,
                api_visibility='private')
            # after the events above, so that the button's API name stays
            # 'segment' (Examples registers one more call of segment())
            if self.examples:
                gr.Examples(
                    examples=self.examples,
                    inputs=[image_in, text_in],
                    outputs=outputs,
                    fn=self.segment,
                    run_on_click=True,
                    cache_examples=False,
                    label='examples (the test split of the config)')
        return demo


def main(argv: Optional[Sequence[str]] = None, launch: bool = True):
    """Build the model and the page; serve it.

    Args:
        argv (list[str], optional): Command line; ``sys.argv[1:]`` if None.
        launch (bool): Serve (blocking). False returns the app unlaunched.

    Returns:
        tuple: ``(gradio.Blocks, WebDemo)``.

    Raises:
        FileNotFoundError: Without a checkpoint (see
            :func:`default_checkpoint`) or config.
    """
    args = parse_args(argv)
    if not osp.isfile(args.config):
        raise FileNotFoundError(
            f'Config not found: {args.config!r} (relative to {os.getcwd()}; '
            'run the demo from the repository root)')
    checkpoint = args.checkpoint or default_checkpoint(args.config)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope('mmseg')
    inferencer = RefSegInferencer(
        cfg, weights=checkpoint, device=args.device, show_progress=False)
    examples = []
    if args.num_examples:
        try:
            examples = examples_from_test_split(cfg, args.num_examples)
        except (FileNotFoundError, ValueError) as err:
            print_log(
                f'No examples: the test split of {args.config} cannot be '
                f'read ({err})',
                logger='current',
                level='WARNING')
    title = (f'Model: {cfg.model.type}, config `{args.config}`, checkpoint '
             f'`{checkpoint}`.')
    app = WebDemo(inferencer, examples, args.max_side, args.max_pixels, title)
    demo = app.build()
    if launch:
        print_log(
            f'{cfg.model.type} web demo on http://{args.host}:{args.port}/ '
            f'({len(examples)} examples; Ctrl+C stops it)',
            logger='current')
        demo.queue(default_concurrency_limit=1).launch(
            server_name=args.host,
            server_port=args.port,
            show_error=True,
            max_file_size=args.max_file_size,
            allowed_paths=sorted({osp.dirname(p)
                                  for p, _ in examples}),
            footer_links=['api'],
            css=_CSS,
            theme=gr.themes.Default(
                font=['ui-sans-serif', 'system-ui', 'sans-serif'],
                font_mono=['ui-monospace', 'monospace']))
    return demo, app


if __name__ == '__main__':
    main()
