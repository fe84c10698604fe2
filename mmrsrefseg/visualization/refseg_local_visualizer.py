# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Drawing of referring segmentation samples: overlays, expression, IoU."""
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import mmcv
import numpy as np
from mmengine.dist import master_only
from mmseg.registry import VISUALIZERS
from mmseg.structures import SegDataSample
from mmseg.visualization import SegLocalVisualizer

from .activation_recorder import ACTIVATION_FIELDS

_FONT = cv2.FONT_HERSHEY_SIMPLEX
Color = Tuple[int, int, int]
Image = np.ndarray
#: Panel titles of the activation maps, by data-sample field.
ACTIVATION_TITLES = dict(
    zip(ACTIVATION_FIELDS,
        ('global activation sigmoid(Z_g)', 'mean local activation')))


def _text_style(width: int) -> Tuple[float, int]:
    """cv2 font scale and stroke thickness for text on a ``width`` px image.

    About 58 characters of lower-case text fit a line of any width (scale
    1.0 at 800 px: about 13.5 px per character, capitals 27 px high),
    never smaller than 0.4 (capitals about 11 px high).
    """
    scale = float(np.clip(width / 800., 0.4, 4.0))
    thickness = max(1, int(round(scale * 2.)))
    return scale, thickness


def _wrap(text: str, max_width: int, scale: float,
          thickness: int) -> List[str]:
    """Greedy word wrap of ``text`` into lines at most ``max_width`` px wide.

    A word wider than a line is broken between characters.
    """

    def fits(s):
        return cv2.getTextSize(s, _FONT, scale, thickness)[0][0] <= max_width

    lines: List[str] = []
    line = ''
    for word in text.split():
        candidate = f'{line} {word}' if line else word
        if fits(candidate):
            line = candidate
            continue
        if line:
            lines.append(line)
        line = ''
        for ch in word:
            if fits(line + ch) or not line:
                line += ch
            else:
                lines.append(line)
                line = ch
    if line:
        lines.append(line)
    return lines


def _line_height(scale: float, thickness: int) -> int:
    """Height in px of one text line including spacing."""
    (_, h), baseline = cv2.getTextSize('Ag', _FONT, scale, thickness)
    return int(h + baseline + max(4, round(0.5 * h)))


@VISUALIZERS.register_module()
class RefSegLocalVisualizer(SegLocalVisualizer):
    """Visualiser of referring segmentation samples.

    Draws binary masks as coloured, semi-transparent overlays with an opaque
    contour, and writes the referring expression legibly (white text on a
    dark banner, wrapped to the image width, scaled with the image size:
    about 58 characters per line). Text is drawn with cv2's Hershey font,
    which covers ASCII only (other characters appear as ``?``).

    :meth:`add_datasample` renders one sample side by side: the image, the
    ground-truth overlay and the prediction overlay (panels of the image's
    size, so the picture is 3 x W wide when both masks are present), below a
    dark header holding the expression, the ref id and the sample's IoU.
    :meth:`draw_overlay` renders a single mask on the image at the image's
    own size (used by ``RefSegInferencer``, ``demo/image_demo.py`` and
    ``tools/analysis_tools/browse_dataset.py``).

    Activation maps (RSRefSeg's explanation of a mask, see
    :class:`ActivationRecorder`): :meth:`draw_heatmap` blends a map in [0, 1]
    over the image in a colour map; :meth:`render_activations` puts the
    prediction overlay, the global activation ``sigmoid(Z_g)`` and the mean
    local activation side by side under the expression; and
    :meth:`render_datasample` appends the two activation panels when the
    data sample carries ``global_activation`` / ``mean_local_activation``
    (``tools/test.py --show-dir DIR --show-activation``).

    IoU: ``I = |pred & gt|``, ``U = |pred | gt|`` over pixels whose ground
    truth is not ``ignore_index``; a sample with ``U = 0`` gets
    ``empty_iou``, as in ``RefSegIoUMetric``.

    Args:
        name (str): Instance name. Defaults to 'visualizer'.
        image (np.ndarray, optional): RGB image to draw on. Defaults to None.
        vis_backends (list[dict], optional): Visual backend configs.
            Defaults to None.
        save_dir (str, optional): Save directory of all backends (the
            pictures of ``LocalVisBackend`` go to
            ``save_dir/vis_data/vis_image/{name}_{step}.png``). Defaults to
            None.
        alpha (float): Opacity in [0, 1] of the mask colour. Defaults to 0.5.
        gt_color (tuple[int]): RGB colour of ground-truth masks. Defaults to
            green ``(0, 255, 0)``.
        pred_color (tuple[int]): RGB colour of predicted masks. Defaults to
            ``(255, 48, 48)`` (red).
        empty_iou (float): IoU in [0, 1] shown for an empty union. Defaults
            to 1.0.
        ignore_index (int): Ground-truth value excluded from the IoU.
            Defaults to 255.
        heatmap_alpha (float): Opacity in [0, 1] of the colour-mapped
            activation / probability maps over the image. Defaults to 0.6.
        colormap (str): OpenCV colour map of those maps (``'jet'``,
            ``'turbo'``, ``'viridis'``, ... : ``cv2.COLORMAP_<NAME>``), 0
            blue to 1 red for ``'jet'``. Defaults to ``'jet'``.
        **kwargs: Other arguments of :class:`SegLocalVisualizer`
            (``classes``, ``palette``, ``dataset_name``; unused here).

    Raises:
        ValueError: If ``alpha``, ``heatmap_alpha`` or ``empty_iou`` lies
            outside [0, 1], a colour is not three ints in [0, 255] or
            ``colormap`` is not an OpenCV colour map.
    """

    def __init__(self,
                 name: str = 'visualizer',
                 image: Optional[np.ndarray] = None,
                 vis_backends: Optional[List[dict]] = None,
                 save_dir: Optional[str] = None,
                 alpha: float = 0.5,
                 gt_color: Sequence[int] = (0, 255, 0),
                 pred_color: Sequence[int] = (255, 48, 48),
                 empty_iou: float = 1.0,
                 ignore_index: int = 255,
                 heatmap_alpha: float = 0.6,
                 colormap: str = 'jet',
                 **kwargs):
        super().__init__(
            name=name,
            image=image,
            vis_backends=vis_backends,
            save_dir=save_dir,
            alpha=alpha,
            **kwargs)
        self._check_opacity(alpha)
        if not 0.0 <= float(empty_iou) <= 1.0:
            raise ValueError(
                f'empty_iou must lie in [0, 1], got {empty_iou!r}')
        self.gt_color = self._check_color(gt_color, 'gt_color')
        self.pred_color = self._check_color(pred_color, 'pred_color')
        self.empty_iou = float(empty_iou)
        self.ignore_index = ignore_index
        self.heatmap_alpha = self._check_opacity(heatmap_alpha)
        self.colormap = self._check_colormap(colormap)

    @staticmethod
    def _check_opacity(opacity: float) -> float:
        if not 0.0 <= float(opacity) <= 1.0:
            raise ValueError(f'opacity must lie in [0, 1], got {opacity!r}')
        return float(opacity)

    @staticmethod
    def _check_color(color: Sequence[int], what: str) -> Color:
        values = tuple(color)
        if len(values) != 3 or not all(
                isinstance(v, (int, np.integer)) and 0 <= v <= 255
                for v in values):
            raise ValueError(
                f'{what} must be three ints in [0, 255] (RGB), got {color!r}')
        return tuple(int(v) for v in values)

    @staticmethod
    def _check_image(image: np.ndarray) -> np.ndarray:
        if not isinstance(image, np.ndarray) or image.ndim != 3 or \
                image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                'image must be an RGB uint8 array of shape (H, W, 3), got '
                f'{getattr(image, "dtype", type(image))} '
                f'{getattr(image, "shape", "")}')
        return image

    @staticmethod
    def _check_colormap(name: str) -> int:
        code = getattr(cv2, f'COLORMAP_{str(name).upper()}', None)
        if not isinstance(name, str) or code is None:
            names = sorted(k[len('COLORMAP_'):].lower() for k in dir(cv2)
                           if k.startswith('COLORMAP_'))
            raise ValueError(f'colormap must be an OpenCV colour map name '
                             f'({", ".join(names)}), got {name!r}')
        return int(code)

    @staticmethod
    def _to_mask(mask, shape: Tuple[int, int], what: str) -> np.ndarray:
        """(H, W) bool mask from an array / tensor of shape (H, W)/(1, H, W).

        Raises:
            ValueError: If the mask's size is not ``shape``.
        """
        if hasattr(mask, 'detach'):
            mask = mask.detach().cpu().numpy()
        mask = np.asarray(mask)
        if mask.ndim == 3 and mask.shape[0] == 1:
            mask = mask[0]
        if mask.shape != tuple(shape):
            raise ValueError(
                f'{what} has shape {mask.shape}, the image is (H, W) '
                f'{tuple(shape)}; masks must be at the image size')
        return mask

    def draw_overlay(self,
                     image: np.ndarray,
                     mask: np.ndarray,
                     color: Optional[Sequence[int]] = None,
                     opacity: Optional[float] = None,
                     text: Optional[Union[str, Sequence[str]]] = None,
                     contour: bool = True) -> np.ndarray:
        """Draw one binary mask and optionally an expression on an image.

        Inside the mask each pixel becomes ``round((1 - opacity) * pixel +
        opacity * color)``; the mask's outer contour is drawn opaque in
        ``color`` (about ``max(H, W) / 300`` px thick; not along the image
        border where the mask is cut off). With ``text``, a banner
        (black at 60 % opacity, white wrapped text) covers the top rows.
        Pixels outside the mask, the contour and the banner are unchanged.

        Args:
            image (np.ndarray): RGB uint8 image of shape (H, W, 3).
            mask (np.ndarray | Tensor): Mask of shape (H, W) or (1, H, W);
                non-zero = object.
            color (Sequence[int], optional): RGB colour. Defaults to
                ``pred_color``.
            opacity (float, optional): Mask opacity in [0, 1]. Defaults to
                ``alpha``.
            text (str | Sequence[str], optional): Referring expression
                (or any caption) written at the top; a sequence gives one
                paragraph per item. Defaults to None (no banner).
            contour (bool): Draw the contour. Defaults to True.

        Returns:
            np.ndarray: RGB uint8 image of shape (H, W, 3) (a new array).

        Raises:
            ValueError: For a non-RGB-uint8 image, a mask of another size, an
                opacity outside [0, 1] or an invalid colour.
        """
        image = self._check_image(image)
        mask = self._to_mask(mask, image.shape[:2], 'mask') != 0
        color = self._check_color(self.pred_color if color is None else color,
                                  'color')
        opacity = self._check_opacity(self.alpha if opacity is
                                      None else opacity)
        out = image.copy()
        if mask.any():
            blended = (1. - opacity) * image[mask].astype(np.float32) + \
                opacity * np.asarray(color, dtype=np.float32)
            out[mask] = np.clip(np.round(blended), 0, 255).astype(np.uint8)
            if contour:
                thick = max(1, int(round(max(image.shape[:2]) / 300.)))
                # Edge padding puts the contour of a mask cut by the image
                # border outside the image: the border is no object edge.
                contours, _ = cv2.findContours(
                    np.pad(mask.astype(np.uint8), thick, mode='edge'),
                    cv2.RETR_EXTERNAL,
                    cv2.CHAIN_APPROX_NONE,
                    offset=(-thick, -thick))
                out = np.ascontiguousarray(out)
                cv2.drawContours(out, contours, -1, color, thick, cv2.LINE_8)
        texts = [text] if isinstance(text, str) else list(text or [])
        texts = [t for t in texts if t]
        if texts:
            out = self._draw_banner(out, texts)
        return out

    def colorize(self, heat: np.ndarray) -> np.ndarray:
        """Colour-map a map in [0, 1] (RGB uint8, same size).

        Values are clipped to [0, 1] and quantised to ``round(255 * v)``
        before the colour map (``colormap``) is applied.

        Args:
            heat (np.ndarray | Tensor): Map of shape (H, W) or (1, H, W).

        Returns:
            np.ndarray: RGB uint8 array of shape (H, W, 3).

        Raises:
            ValueError: If the map is not 2-D (after dropping a leading 1)
                or holds NaN.
        """
        if hasattr(heat, 'detach'):
            heat = heat.detach().cpu().numpy()
        heat = np.asarray(heat, dtype=np.float32)
        if heat.ndim == 3 and heat.shape[0] == 1:
            heat = heat[0]
        if heat.ndim != 2:
            raise ValueError(f'heat map must be (H, W), got {heat.shape}')
        if np.isnan(heat).any():
            raise ValueError('heat map holds NaN')
        levels = np.round(np.clip(heat, 0., 1.) * 255.).astype(np.uint8)
        return cv2.cvtColor(
            cv2.applyColorMap(levels, self.colormap), cv2.COLOR_BGR2RGB)

    def draw_heatmap(
            self,
            image: np.ndarray,
            heat: np.ndarray,
            opacity: Optional[float] = None,
            text: Optional[Union[str, Sequence[str]]] = None) -> np.ndarray:
        """Blend a colour-mapped map in [0, 1] over an image.

        Each pixel becomes ``round((1 - opacity) * pixel + opacity *
        colour)``, ``colour`` from :meth:`colorize`.

        Args:
            image (np.ndarray): RGB uint8 image of shape (H, W, 3).
            heat (np.ndarray | Tensor): Map of shape (H, W) or (1, H, W)
                at the image size, values in [0, 1] (clipped).
            opacity (float, optional): Opacity in [0, 1] of the colours.
                Defaults to ``heatmap_alpha``.
            text (str | Sequence[str], optional): Caption on a top banner
                (see :meth:`draw_overlay`). Defaults to None.

        Returns:
            np.ndarray: RGB uint8 image of shape (H, W, 3) (a new array).

        Raises:
            ValueError: For a non-RGB-uint8 image, a map of another size or
                an opacity outside [0, 1].
        """
        image = self._check_image(image)
        colours = self.colorize(heat)
        if colours.shape[:2] != image.shape[:2]:
            raise ValueError(
                f'heat map has shape {colours.shape[:2]}, the image is '
                f'(H, W) {image.shape[:2]}; maps must be at the image size')
        opacity = self._check_opacity(self.heatmap_alpha if opacity is
                                      None else opacity)
        out = cv2.addWeighted(
            image.astype(np.float32), 1. - opacity, colours.astype(np.float32),
            opacity, 0.)
        out = np.clip(np.round(out), 0, 255).astype(np.uint8)
        texts = [text] if isinstance(text, str) else list(text or [])
        texts = [t for t in texts if t]
        if texts:
            out = self._draw_banner(out, texts)
        return out

    def _draw_banner(self, image: np.ndarray, texts: List[str]) -> np.ndarray:
        """Write ``texts`` (one paragraph each) on a dark top banner."""
        h, w = image.shape[:2]
        scale, thick = _text_style(w)
        pad = max(3, int(round(w / 100.)))
        lines = [
            line for t in texts for line in _wrap(t, w - 2 * pad, scale, thick)
        ]
        line_h = _line_height(scale, thick)
        banner_h = min(h, len(lines) * line_h + pad)
        top = image[:banner_h].astype(np.float32) * 0.4
        image[:banner_h] = np.round(top).astype(np.uint8)
        self._put_lines(image, lines, pad, pad, line_h, scale, thick)
        return image

    @staticmethod
    def _put_lines(canvas: np.ndarray, lines: List[str], x: int, y: int,
                   line_h: int, scale: float, thick: int) -> None:
        """Write ``lines`` in white from the top-left corner ``(x, y)``."""
        (_, text_h), _ = cv2.getTextSize('Ag', _FONT, scale, thick)
        for i, line in enumerate(lines):
            cv2.putText(canvas, line, (x, y + i * line_h + text_h), _FONT,
                        scale, (255, 255, 255), thick, cv2.LINE_AA)

    def compute_iou(self, pred: np.ndarray, gt: np.ndarray) -> float:
        """IoU of a binary prediction with a ground-truth mask.

        Args:
            pred (np.ndarray): (H, W), non-zero = object.
            gt (np.ndarray): (H, W), 1 = object, ``ignore_index`` = ignored.

        Returns:
            float: ``|pred & gt| / |pred | gt|`` in [0, 1] over non-ignored
            pixels; ``empty_iou`` when the union is empty.
        """
        valid = gt != self.ignore_index
        pred = (pred != 0) & valid
        gt = (gt == 1) & valid
        union = int(np.count_nonzero(pred | gt))
        if union == 0:
            return self.empty_iou
        return int(np.count_nonzero(pred & gt)) / union

    def render_datasample(self,
                          image: np.ndarray,
                          data_sample: SegDataSample,
                          draw_gt: bool = True,
                          draw_pred: bool = True,
                          with_labels: bool = True,
                          draw_activation: bool = True) -> np.ndarray:
        """Render a sample: image | ground truth | prediction, plus header.

        When the sample carries activation maps (``global_activation``,
        ``mean_local_activation``, set by :class:`ActivationRecorder`), their
        heat maps (:meth:`draw_heatmap`) follow as two more panels, with a
        colour bar under their titles.

        Args:
            image (np.ndarray): RGB uint8 image of shape (H, W, 3) at the
                original size.
            data_sample (SegDataSample): With ``gt_sem_seg`` and / or
                ``pred_sem_seg`` of shape (1, H, W) (values 0/1; 255 =
                ignored in the ground truth), optionally the activation maps
                (1, H, W) in [0, 1], and metainfo ``text`` and ``ref_id``
                (optional).
            draw_gt (bool): Add the ground-truth panel if present.
            draw_pred (bool): Add the prediction panel if present.
            with_labels (bool): Add the header with the expression, ref id,
                panel titles and IoU (when both masks are present).
            draw_activation (bool): Add the activation panels if present.
                Defaults to True.

        Returns:
            np.ndarray: RGB uint8 image of shape (H + header, k * W, 3), k
            = 1 + number of mask and activation panels.

        Raises:
            ValueError: If a mask or map is not at the image size.
        """
        image = self._check_image(image)
        hw = image.shape[:2]
        meta = data_sample.metainfo
        panels = [image]
        titles = ['image']
        gt = pred = None
        if draw_gt and 'gt_sem_seg' in data_sample:
            gt = self._to_mask(data_sample.gt_sem_seg.data, hw, 'gt_sem_seg')
            panels.append(self.draw_overlay(image, (gt == 1), self.gt_color))
            titles.append('ground truth')
        if draw_pred and 'pred_sem_seg' in data_sample:
            pred = self._to_mask(data_sample.pred_sem_seg.data, hw,
                                 'pred_sem_seg')
            panels.append(self.draw_overlay(image, pred != 0, self.pred_color))
            titles.append('prediction')
        colorbars = []
        if draw_activation:
            for key, title in ACTIVATION_TITLES.items():
                if key in data_sample:
                    heat = self._to_mask(data_sample.get(key).data, hw, key)
                    colorbars.append(len(panels))
                    panels.append(self.draw_heatmap(image, heat))
                    titles.append(title)
        info = [
            f'{label} {meta[k]}'
            for k, label in (('ref_id', 'ref'), ('sent_id', 'sent'),
                             ('image_id', 'image')) if meta.get(k) is not None
        ]
        if gt is not None and pred is not None:
            info.append(f'IoU {self.compute_iou(pred, gt):.3f}')
        if not with_labels:
            return np.concatenate(panels, axis=1)
        lines = [f'"{meta["text"]}"'] if meta.get('text') else []
        if info:
            lines.append(', '.join(info))
        return self._compose(panels, titles, lines, colorbars)

    def render_activations(self,
                           image: np.ndarray,
                           mask: np.ndarray,
                           global_activation: np.ndarray,
                           mean_local_activation: np.ndarray,
                           text: Optional[str] = None,
                           info: Optional[str] = None,
                           opacity: Optional[float] = None) -> np.ndarray:
        """Prediction overlay and activation heat maps side by side.

        Three panels of the image's size -- the predicted mask
        (:meth:`draw_overlay` in ``pred_color``), the global activation
        ``sigmoid(Z_g)`` and the mean local activation (:meth:`draw_heatmap`)
        -- below a dark header with the expression, ``info``, the panel
        titles and a colour bar (0 to 1) under each activation title.

        Args:
            image (np.ndarray): RGB uint8 image of shape (H, W, 3).
            mask (np.ndarray | Tensor): Predicted mask (H, W) or (1, H, W),
                non-zero = object.
            global_activation (np.ndarray | Tensor): (H, W) or (1, H, W)
                in [0, 1].
            mean_local_activation (np.ndarray | Tensor): (H, W) or
                (1, H, W) in [0, 1].
            text (str, optional): Referring expression (quoted in the
                header). Defaults to None.
            info (str, optional): One more header line. Defaults to None.
            opacity (float, optional): Mask opacity in [0, 1]. Defaults to
                ``alpha``.

        Returns:
            np.ndarray: RGB uint8 image of shape (H + header, 3 * W, 3).

        Raises:
            ValueError: For a non-RGB-uint8 image, a mask or map of another
                size or an opacity outside [0, 1].
        """
        image = self._check_image(image)
        hw = image.shape[:2]
        panels = [self.draw_overlay(image, mask, opacity=opacity)]
        for key, heat in (('global_activation', global_activation),
                          ('mean_local_activation', mean_local_activation)):
            panels.append(
                self.draw_heatmap(image, self._to_mask(heat, hw, key)))
        lines = [f'"{text}"'] if text else []
        if info:
            lines.append(info)
        titles = ['prediction'] + list(ACTIVATION_TITLES.values())
        return self._compose(panels, titles, lines, colorbars=[1, 2])

    def _compose(self,
                 panels: List[np.ndarray],
                 titles: List[str],
                 lines: List[str],
                 colorbars: Sequence[int] = ()) -> Image:
        """Panels of equal size side by side under a dark header.

        The header holds ``lines`` (wrapped to the whole width), then each
        panel's title (wrapped to the panel width) and, for the panels in
        ``colorbars``, a colour bar from 0 (left) to 1 (right).
        """
        body = np.concatenate(panels, axis=1)
        w = panels[0].shape[1]
        scale, thick = _text_style(w)
        pad = max(3, int(round(w / 100.)))
        line_h = _line_height(scale, thick)
        lines = [
            wrapped for line in lines
            for wrapped in _wrap(line, body.shape[1] - 2 * pad, scale, thick)
        ]
        title_lines = [_wrap(t, w - 2 * pad, scale, thick) for t in titles]
        num_title_lines = max(len(t) for t in title_lines)
        bar_h = line_h if colorbars else 0
        header_h = (len(lines) + num_title_lines) * line_h + bar_h + pad
        header = np.full((header_h, body.shape[1], 3), 32, dtype=np.uint8)
        self._put_lines(header, lines, pad, pad, line_h, scale, thick)
        title_y = pad + len(lines) * line_h
        for k, t_lines in enumerate(title_lines):
            self._put_lines(header, t_lines, k * w + pad, title_y, line_h,
                            scale, thick)
        bar_y = title_y + num_title_lines * line_h
        for k in colorbars:
            self._draw_colorbar(header, k * w + pad, (k + 1) * w - pad, bar_y,
                                line_h, scale, thick)
        return np.concatenate([header, body], axis=0)

    def _draw_colorbar(self, canvas: np.ndarray, x0: int, x1: int, y: int,
                       line_h: int, scale: float, thick: int) -> None:
        """Colour bar labelled 0 and 1 between columns x0 and x1."""
        (w0, text_h), _ = cv2.getTextSize('0', _FONT, scale, thick)
        (w1, _), _ = cv2.getTextSize('1', _FONT, scale, thick)
        gap = max(2, w0 // 2)
        bar_x0, bar_x1 = x0 + w0 + gap, x1 - w1 - gap
        if bar_x1 - bar_x0 < 2:
            return
        bar_h = max(2, text_h)
        bar = self.colorize(
            np.repeat(np.linspace(0., 1., bar_x1 - bar_x0)[None], bar_h, 0))
        canvas[y:y + bar_h, bar_x0:bar_x1] = bar
        for label, x in (('0', x0), ('1', bar_x1 + gap)):
            cv2.putText(canvas, label, (x, y + text_h), _FONT, scale,
                        (255, 255, 255), thick, cv2.LINE_AA)

    @master_only
    def add_datasample(self,
                       name: str,
                       image: np.ndarray,
                       data_sample: Optional[SegDataSample] = None,
                       draw_gt: bool = True,
                       draw_pred: bool = True,
                       show: bool = False,
                       wait_time: float = 0,
                       out_file: Optional[str] = None,
                       step: int = 0,
                       with_labels: Optional[bool] = True) -> None:
        """Draw a sample (see :meth:`render_datasample`) and save / show it.

        With ``show`` the picture is displayed; with ``out_file`` it is
        written there (PNG/JPEG by extension); otherwise it goes to every
        vis backend (``LocalVisBackend``:
        ``save_dir/vis_data/vis_image/{name}_{step}.png``).

        Args:
            name (str): Picture name (file name stem in the backends).
            image (np.ndarray): RGB uint8 image of shape (H, W, 3).
            data_sample (SegDataSample, optional): The sample; None draws
                the image only.
            draw_gt (bool): Draw the ground truth. Defaults to True.
            draw_pred (bool): Draw the prediction. Defaults to True.
            show (bool): Display the picture. Defaults to False.
            wait_time (float): Display time in seconds. Defaults to 0.
            out_file (str, optional): Output file. Defaults to None.
            step (int): Global step recorded by the backends. Defaults to 0.
            with_labels (bool): Draw the header. Defaults to True.

        Raises:
            ValueError: See :meth:`render_datasample`.
        """
        if data_sample is None:
            drawn = self._check_image(image).copy()
        else:
            drawn = self.render_datasample(image, data_sample, draw_gt,
                                           draw_pred, bool(with_labels))
        self.set_image(drawn)
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            mmcv.imwrite(mmcv.rgb2bgr(drawn), out_file)
        else:
            self.add_image(name, drawn, step)
