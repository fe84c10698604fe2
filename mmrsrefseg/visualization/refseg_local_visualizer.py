# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Drawing of referring segmentation samples: overlays, expression, IoU."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import mmcv
import numpy as np
from mmengine.dist import master_only
from mmseg.registry import VISUALIZERS
from mmseg.structures import SegDataSample
from mmseg.visualization import SegLocalVisualizer

from ..evaluation.functional import as_2d_array, count_pixels, sample_ious
from .activation_recorder import ACTIVATION_TITLES, activation_maps_of
from .captions import compose_panels, draw_banner

Color = Tuple[int, int, int]


@VISUALIZERS.register_module()
class RefSegLocalVisualizer(SegLocalVisualizer):
    """Visualiser of referring segmentation samples.

    - :meth:`draw_overlay`: one mask as a coloured, semi-transparent
      overlay with an opaque contour, optionally under a banner holding the
      referring expression, at the image's own size (``RefSegInferencer``,
      ``demo/image_demo.py``, ``tools/analysis_tools/browse_dataset.py``);
    - :meth:`draw_heatmap`: a map in [0, 1] (an activation map of
      :class:`ActivationRecorder`, the model's explanation of a mask, or a
      probability map) blended over the image in a colour map;
    - :meth:`render_datasample` / :meth:`add_datasample`: image, ground
      truth and prediction side by side (panels of the image's size) under
      a header with the expression, the ids and the sample's IoU, plus the
      activation heat maps the sample carries (``tools/test.py --show-dir
      DIR [--show-activation]``);
    - :meth:`render_activations`: prediction and activation heat maps side
      by side (RSRefSeg: global activation ``sigmoid(Z_g)`` and mean local
      activation; RSRefSeg 2: the dense-prompt activation), titled and
      ordered by :data:`~.activation_recorder.ACTIVATION_TITLES`.

    Text (:mod:`.captions`) is drawn by matplotlib in DejaVu Sans Mono
    Bold, scaled with the image (about 59 characters per line); characters
    the font lacks, such as emoji or CJK, are drawn as ``�``. A caption
    holds at most 4 lines (a longer expression is cut with ``…``), and a
    banner at most a third of the image height, so the image stays
    visible. Heat maps carry a matplotlib colour bar in their colours.

    IoU: counted by the metric's own function
    (:func:`~mmrsrefseg.evaluation.functional.count_pixels`) over pixels
    whose ground truth is not ``ignore_index``; a sample with an empty
    union gets ``empty_iou``, as in ``RefSegIoUMetric``.

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
    def _to_mask(mask,
                 shape: Optional[Tuple[int, int]] = None,
                 what: str = 'mask') -> np.ndarray:
        """(H, W) array from an array / tensor of shape (H, W)/(1, H, W).

        Raises:
            ValueError: If the array is not (H, W) / (1, H, W) or its size
                is not ``shape`` (when given).
        """
        mask = as_2d_array(mask, what)
        if shape is not None and mask.shape != tuple(shape):
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
        (:func:`~.captions.draw_banner`: black at 60 % opacity, white
        wrapped text, at most 4 lines and a third of the image height)
        covers the top rows.
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
        return draw_banner(out, text)

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
        heat = self._to_mask(heat, what='heat map').astype(np.float32)
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
        return draw_banner(out, text)

    def compute_iou(self, pred: np.ndarray, gt: np.ndarray) -> float:
        """IoU of a binary prediction with a ground-truth mask.

        Args:
            pred (np.ndarray | Tensor): (H, W), values 0/1.
            gt (np.ndarray | Tensor): (H, W), 0/1, ``ignore_index`` =
                ignored.

        Returns:
            float: ``|pred & gt| / |pred | gt|`` in [0, 1] over non-ignored
            pixels; ``empty_iou`` when the union is empty.

        Raises:
            ValueError: For masks of different shapes or other values (see
                :func:`~mmrsrefseg.evaluation.functional.count_pixels`).
        """
        counts = count_pixels(pred, gt, self.ignore_index)
        return float(
            sample_ious([counts.intersection], [counts.union],
                        self.empty_iou)[0])

    def render_datasample(self,
                          image: np.ndarray,
                          data_sample: SegDataSample,
                          draw_gt: bool = True,
                          draw_pred: bool = True,
                          with_labels: bool = True,
                          draw_activation: bool = True) -> np.ndarray:
        """Render a sample: image | ground truth | prediction, plus header.

        When the sample carries activation maps (fields of
        :data:`~.activation_recorder.ACTIVATION_TITLES`, set by
        :class:`ActivationRecorder`: ``global_activation`` and
        ``mean_local_activation`` for RSRefSeg, ``dense_prompt_activation``
        for RSRefSeg 2), their heat maps (:meth:`draw_heatmap`) follow as
        one more panel each, with a colour bar under their titles.

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
            for key, data in activation_maps_of(data_sample).items():
                heat = self._to_mask(data, hw, key)
                colorbars.append(len(panels))
                panels.append(self.draw_heatmap(image, heat))
                titles.append(ACTIVATION_TITLES[key])
        if not with_labels:
            return np.concatenate(panels, axis=1)
        info = [
            f'{label} {meta[k]}'
            for k, label in (('ref_id', 'ref'), ('sent_id', 'sent'),
                             ('image_id', 'image')) if meta.get(k) is not None
        ]
        if gt is not None and pred is not None:
            info.append(f'IoU {self.compute_iou(pred, gt):.3f}')
        lines = [f'"{meta["text"]}"'] if meta.get('text') else []
        if info:
            lines.append(', '.join(info))
        return compose_panels(panels, titles, lines,
                              [(k, self.colorize) for k in colorbars])

    def render_activations(self,
                           image: np.ndarray,
                           mask: np.ndarray,
                           activations: Dict[str, np.ndarray],
                           text: Optional[str] = None,
                           info: Optional[str] = None,
                           opacity: Optional[float] = None) -> np.ndarray:
        """Prediction overlay and activation heat maps side by side.

        Panels of the image's size -- the predicted mask
        (:meth:`draw_overlay` in ``pred_color``), then each activation map
        (:meth:`draw_heatmap`) in the order of
        :data:`~.activation_recorder.ACTIVATION_TITLES` -- below a dark
        header with the expression, ``info``, the panel titles and a colour
        bar (0 to 1) under each activation title.

        Args:
            image (np.ndarray): RGB uint8 image of shape (H, W, 3).
            mask (np.ndarray | Tensor): Predicted mask (H, W) or (1, H, W),
                non-zero = object.
            activations (dict[str, np.ndarray | Tensor]): Field (a key of
                ``ACTIVATION_TITLES``: ``global_activation`` and
                ``mean_local_activation`` for RSRefSeg,
                ``dense_prompt_activation`` for RSRefSeg 2) -> map of shape
                (H, W) or (1, H, W) in [0, 1].
            text (str, optional): Referring expression (quoted in the
                header). Defaults to None.
            info (str, optional): One more header line. Defaults to None.
            opacity (float, optional): Mask opacity in [0, 1]. Defaults to
                ``alpha``.

        Returns:
            np.ndarray: RGB uint8 image of shape (H + header, (1 + k) * W,
            3), k = ``len(activations)``.

        Raises:
            ValueError: For a non-RGB-uint8 image, a mask or map of another
                size, no map or a field without a title, or an opacity
                outside [0, 1].
        """
        image = self._check_image(image)
        hw = image.shape[:2]
        unknown = sorted(set(activations) - set(ACTIVATION_TITLES))
        if unknown or not activations:
            raise ValueError(
                f'activations must map some of {list(ACTIVATION_TITLES)} '
                f'to maps, got {sorted(activations)}')
        panels = [self.draw_overlay(image, mask, opacity=opacity)]
        titles = ['prediction']
        for key, title in ACTIVATION_TITLES.items():
            if key in activations:
                heat = self._to_mask(activations[key], hw, key)
                panels.append(self.draw_heatmap(image, heat))
                titles.append(title)
        lines = [f'"{text}"'] if text else []
        if info:
            lines.append(info)
        return compose_panels(panels, titles, lines,
                              [(k, self.colorize)
                               for k in range(1, len(panels))])

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
