# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Inference API: images + referring expressions -> binary masks."""
import contextlib
import copy
import math
import os.path as osp
from datetime import datetime
from pathlib import Path
from typing import Iterator, List, Optional, Tuple, Union

import mmcv
import mmengine
import numpy as np
import torch
import torch.nn as nn
from mmcv.transforms import Compose
from mmengine.config import Config, ConfigDict
from mmengine.dataset import pseudo_collate
from mmengine.infer.infer import BaseInferencer, ModelType
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmseg.datasets.transforms.loading import InferencerLoader
from mmseg.registry import VISUALIZERS
from mmseg.structures import SegDataSample
from rich.progress import track

from mmrsrefseg.models.utils import model_state_from_checkpoint
from mmrsrefseg.utils.checkpoint import read_checkpoint
from mmrsrefseg.visualization import (ACTIVATION_FIELDS, ActivationRecorder,
                                      RefSegLocalVisualizer,
                                      activation_maps_of)
from .inference_inputs import ImagesType, TextsType, pair_inputs

#: Ground-truth loaders dropped from the test pipeline at inference.
_ANNOTATION_LOADERS = ('LoadRefSegAnnotations', 'LoadAnnotations')


def _type_name(transform_cfg: dict) -> str:
    t = transform_cfg['type']
    return t if isinstance(t, str) else getattr(t, '__name__', str(t))


class RefSegInferencer(BaseInferencer):
    """Referring segmentation inferencer (images + expressions -> masks).

    Follows mmengine's :class:`BaseInferencer` and mmseg's
    ``MMSegInferencer`` (``mmseg/apis/mmseg_inferencer.py``, Apache-2.0):
    the model is built from the config and the checkpoint is loaded
    (strictly: a missing or unexpected key is an error, never a silently
    random layer); the test pipeline is the config's
    ``test_dataloader.dataset.pipeline`` without ground-truth loading
    (``LoadRefSegAnnotations`` / ``LoadAnnotations``) and with
    ``LoadImageFromFile`` replaced by mmseg's ``InferencerLoader`` (file
    paths through ``LoadImageFromFile``, arrays through
    ``LoadImageFromNDArray``, same keyword arguments). Each pipeline input is
    ``dict(img_path=path, text=expression)`` or ``dict(img=bgr_array,
    text=expression)``; the packing transform (``PackSegInputs`` with
    ``text`` in its ``meta_keys``) puts ``text`` into the data sample's
    metainfo, which the model reads.

    Colour order: images given as arrays are **RGB** (what PIL, matplotlib
    and ``mmcv.imread(..., channel_order='rgb')`` return). They are
    converted to BGR before the pipeline, because ``LoadImageFromFile``
    yields BGR and the config's data preprocessor converts BGR to RGB; a
    file and the same pixels given as an RGB array therefore give the same
    prediction.

    The tokenizer of the text encoder must be readable at inference: the
    config's ``model.backbone.tokenizer`` (or ``pretrained``) must point to
    the tokenizer directory. The pretrained CLIP / SAM weight files named in
    the config are read only for a trained-only checkpoint (its frozen base
    weights, see :class:`~mmrsrefseg.engine.hooks.RefSegCheckpointHook`); a
    full checkpoint holds every weight.

    Args:
        model (str | Config | dict): Config file path or config.
        weights (str): Checkpoint (mmengine ``.pth`` with ``state_dict``).
        device (str, optional): ``'cpu'``, ``'cuda'``, ``'cuda:1'``, ... .
            Defaults to the available device.
        scope (str): Registry scope. Defaults to 'mmseg'.
        show_progress (bool): Show a progress bar when an input list spans
            more than one batch. Defaults to True.

    Raises:
        FileNotFoundError: If the config or checkpoint file does not exist.
        ValueError: If ``weights`` is None, or the test pipeline has no
            ``LoadImageFromFile`` or does not pack ``text`` into the
            metainfo.
        StateDictError: If the checkpoint (with its base weights, when
            trained-only) does not match the model: missing, unexpected or
            mis-shaped keys, named with the file.

    Examples:
        >>> inferencer = RefSegInferencer(
        ...     'configs/rsrefseg_tiny_synthetic.py',
        ...     weights='work_dirs/rsrefseg_tiny_synthetic/best.pth',
        ...     device='cpu')
        >>> result = inferencer('demo.jpg', ['the ship on the left',
        ...                                  'the large storage tank'])
        >>> result['masks'][0].shape, result['masks'][0].dtype
        ((800, 800), dtype('uint8'))
    """

    preprocess_kwargs: set = set()
    forward_kwargs: set = set()
    visualize_kwargs: set = {
        'show', 'wait_time', 'img_out_dir', 'opacity', 'return_vis'
    }
    postprocess_kwargs: set = {'pred_out_dir'}

    def __init__(self,
                 model: Union[ModelType, str],
                 weights: Optional[str] = None,
                 device: Optional[str] = None,
                 scope: str = 'mmseg',
                 show_progress: bool = True) -> None:
        if isinstance(model, (str, Path)):
            model = str(model)
            if not osp.isfile(model):
                raise FileNotFoundError(f'Config file not found: {model!r}')
        if weights is None:
            raise ValueError(
                'RefSegInferencer needs weights (an mmengine checkpoint of '
                'the whole model); without them every layer would be random')
        weights = str(weights)
        if '://' not in weights:
            read_checkpoint(weights, mmap=True)  # errors name the file
        self.weights = weights
        init_default_scope(scope)
        super().__init__(
            model=model,
            weights=weights,
            device=device,
            scope=scope,
            show_progress=show_progress)
        if device == 'cpu' or not torch.cuda.is_available():
            self.model = revert_sync_batchnorm(self.model)

    # ------------------------------------------------------------ building
    def _load_weights_to_model(
            self, model: nn.Module, checkpoint: Optional[dict],
            cfg: Optional[Union[Config, ConfigDict]]) -> None:
        """Load the checkpoint strictly (all keys, all shapes).

        A trained-only checkpoint is completed with the pretrained weights
        the config names (see
        :func:`~mmrsrefseg.models.utils.model_state_from_checkpoint`).

        Raises:
            StateDictError: On missing, unexpected or mis-shaped keys.
        """
        state = model_state_from_checkpoint(model, checkpoint, self.weights)
        model.load_state_dict(state, strict=True)
        meta = checkpoint.get('meta', {}) or {}
        if 'dataset_meta' in meta:
            model.dataset_meta = meta['dataset_meta']

    def _init_pipeline(self, cfg: Union[Config, ConfigDict]) -> Compose:
        """The config's test pipeline for un-annotated inputs.

        Raises:
            ValueError: If ``LoadImageFromFile`` is missing or no transform
                packs ``text`` into the metainfo.
        """
        pipeline_cfg = [
            copy.deepcopy(t) for t in cfg.test_dataloader.dataset.pipeline
            if _type_name(t) not in _ANNOTATION_LOADERS
        ]
        names = [_type_name(t) for t in pipeline_cfg]
        if 'LoadImageFromFile' not in names:
            raise ValueError('LoadImageFromFile is not in the test pipeline '
                             f'(test_dataloader.dataset.pipeline: {names})')
        idx = names.index('LoadImageFromFile')
        pipeline_cfg[idx]['type'] = 'InferencerLoader'
        pipeline = Compose(pipeline_cfg)
        packers = [t for t in pipeline.transforms if hasattr(t, 'meta_keys')]
        if not any('text' in t.meta_keys for t in packers):
            raise ValueError(
                'The test pipeline does not pack the referring expression: '
                "no transform has 'text' in its meta_keys (use "
                "PackSegInputs with the meta_keys of "
                "configs/_base_/datasets/rrsisd.py); pipeline: "
                f"{names}")
        return pipeline

    def _init_collate(self, cfg: Union[Config, ConfigDict]):
        """``test_dataloader.collate_fn`` if set, else ``pseudo_collate``."""
        if cfg.get('test_dataloader', {}).get('collate_fn') is not None:
            return super()._init_collate(cfg)
        return pseudo_collate

    def _init_visualizer(
            self, cfg: Union[Config, ConfigDict]) -> RefSegLocalVisualizer:
        """A backend-less :class:`RefSegLocalVisualizer`.

        Colours and opacity come from ``cfg.visualizer`` when it is a
        ``RefSegLocalVisualizer`` config, else the defaults.
        """
        vis_cfg = dict(type='RefSegLocalVisualizer')
        cfg_vis = cfg.get('visualizer') or {}
        if cfg_vis.get('type') == 'RefSegLocalVisualizer':
            vis_cfg.update({
                k: copy.deepcopy(v)
                for k, v in cfg_vis.items()
                if k not in ('type', 'name', 'vis_backends', 'save_dir')
            })
        vis_cfg['name'] = 'refseg_inferencer_' + str(
            datetime.timestamp(datetime.now()))
        return VISUALIZERS.build(vis_cfg)

    # -------------------------------------------------------------- inputs
    def _loader_kwargs(self) -> dict:
        """How the pipeline's loader decodes files (see ``pair_inputs``)."""
        loader = next(
            t.from_file for t in self.pipeline.transforms
            if isinstance(t, InferencerLoader))
        return dict(
            color_type=loader.color_type,
            imdecode_backend=loader.imdecode_backend,
            backend_args=loader.backend_args)

    def pair_inputs(
            self, images: ImagesType,
            texts: TextsType) -> List[Tuple[Union[str, np.ndarray], str]]:
        """Validate and pair images with referring expressions.

        Accepted forms: one image + one expression; one image + a list of
        expressions (each segmented on that image); a list of images + a
        list of as many expressions (pairwise). Every input is checked
        before any model runs; image files are decoded once here with the
        test pipeline's loader settings (see
        :func:`~mmrsrefseg.apis.inference_inputs.pair_inputs`).

        Args:
            images (str | Path | np.ndarray | Sequence): Image file path(s)
                or RGB uint8 array(s) of shape (H, W, 3).
            texts (str | Sequence[str]): Referring expression(s).

        Returns:
            list[tuple]: ``(image, text)`` pairs, the image a path or the
            RGB array.

        Raises:
            ValueError: For no input, an empty expression, a list of images
                with a single str or a list of another length, a malformed
                array, or an image file that is empty (0 bytes) or does not
                decode (not an image, corrupt, truncated), naming the file.
            FileNotFoundError: For a missing image file.
            TypeError: For inputs of other types (e.g. ``texts=None`` or a
                None among the expressions), naming the argument and index.
        """
        return pair_inputs(images, texts, **self._loader_kwargs())

    @staticmethod
    def _pipeline_input(pair: Tuple[Union[str, np.ndarray], str]) -> dict:
        image, text = pair
        if isinstance(image, str):
            return dict(img_path=image, text=text)
        # RGB -> BGR, as LoadImageFromFile yields (see the class docstring)
        return dict(img=np.ascontiguousarray(image[..., ::-1]), text=text)

    def preprocess(self,
                   inputs: List[Tuple[Union[str, np.ndarray], str]],
                   batch_size: int = 1,
                   **kwargs) -> Iterator[dict]:
        """Run the pipeline on ``(image, text)`` pairs and collate batches.

        Args:
            inputs (list[tuple]): From :meth:`pair_inputs`.
            batch_size (int): Samples per batch.

        Yields:
            dict: ``inputs`` (list of (3, H, W) uint8 tensors) and
            ``data_samples`` (list of :obj:`SegDataSample`).
        """
        data = map(self.pipeline, map(self._pipeline_input, inputs))
        yield from map(self.collate_fn, self._get_chunk_data(data, batch_size))

    # ---------------------------------------------------------------- call
    def __call__(self,
                 images: ImagesType,
                 texts: TextsType,
                 batch_size: int = 1,
                 show: bool = False,
                 wait_time: float = 0,
                 out_dir: str = '',
                 opacity: Optional[float] = None,
                 return_datasamples: bool = False,
                 return_vis: bool = False,
                 return_activations: bool = False) -> dict:
        """Segment the object each referring expression refers to.

        Args:
            images (str | Path | np.ndarray | Sequence): Image file path(s)
                or **RGB** uint8 array(s) of shape (H, W, 3).
            texts (str | Sequence[str]): One expression per image, or a list
                of expressions for a single image.
            batch_size (int): Samples per forward pass (>= 1). Results do
                not depend on it. Defaults to 1.
            show (bool): Display each overlay. Defaults to False.
            wait_time (float): Display time in seconds. Defaults to 0.
            out_dir (str): If set, write ``out_dir/vis/{stem}_{i}.png``
                (overlay with the expression, see
                :meth:`RefSegLocalVisualizer.draw_overlay`) and
                ``out_dir/pred/{stem}_{i}.png`` (single-channel mask, 0 /
                255), ``stem`` the image file stem (``array`` for arrays)
                and ``i`` the index of the pair in this call. Defaults to
                ''.
            opacity (float, optional): Mask opacity in [0, 1] of the
                overlays. Defaults to the visualiser's (0.5).
            return_datasamples (bool): Add ``predictions``. Defaults to
                False.
            return_vis (bool): Add ``visualization``. Defaults to False.
            return_activations (bool): Also return the model's activation
                maps (those its neck declares, from the same forward pass,
                see :class:`ActivationRecorder`), and draw them next to the
                mask in the pictures (``out_dir``, ``show``,
                ``return_vis``; see
                :meth:`RefSegLocalVisualizer.render_activations`).
                Defaults to False (nothing is recorded).

        Returns:
            dict: One entry per ``(image, expression)`` pair in each list:

            - ``masks`` (list[np.ndarray]): uint8 (H, W) in {0, 1} at the
              original image size (1 = referred object, probability >
              the head's threshold, 0.5).
            - ``probabilities`` (list[np.ndarray]): float32 (H, W) in [0, 1].
            - ``predictions`` (list[SegDataSample], if
              ``return_datasamples``): with ``pred_sem_seg`` and
              ``seg_logits`` (probabilities) of shape (1, H, W).
            - ``visualization`` (list[np.ndarray], if ``return_vis``): RGB
              uint8 overlays (H, W, 3); with ``return_activations`` the
              overlay and the k activation maps side by side under a
              header, (H + header, (1 + k) W, 3).
            - with ``return_activations``, one list of float32 (H, W) maps
              in [0, 1] at the image size per activation map, named after
              the map's field plus ``s``. RSRefSeg (``TextFilterNeck``):
              ``global_activations``, ``sigmoid(Z_g)``, and
              ``mean_local_activations``, the local activation averaged over
              the expression's tokens, both bilinearly upsampled from CLIP's
              patch grid. RSRefSeg 2 (``CascadedPrompter``):
              ``dense_prompt_activations``, the sigmoid of the dense prompt
              SAM 2.1 gets, upsampled from SAM 2.1's mask-input grid like
              the mask.

        Raises:
            ValueError, FileNotFoundError, TypeError: See
                :meth:`pair_inputs`; ``ValueError`` for ``batch_size`` < 1.
        """
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f'batch_size must be an int >= 1, got '
                             f'{batch_size!r}')
        pairs = self.pair_inputs(images, texts)
        img_out_dir = osp.join(out_dir, 'vis') if out_dir else ''
        pred_out_dir = osp.join(out_dir, 'pred') if out_dir else ''
        batches = self.preprocess(pairs, batch_size=batch_size)
        num_batches = math.ceil(len(pairs) / batch_size)
        if self.show_progress and num_batches > 1:
            batches = track(
                batches, description='Inference', total=num_batches)
        preds: List[SegDataSample] = []
        recorder = ActivationRecorder(self.model) if return_activations \
            else contextlib.nullcontext()
        with recorder:
            for batch in batches:
                batch_preds = self.forward(batch)
                if return_activations:
                    recorder.attach(batch_preds)
                preds.extend(batch_preds)
        visualization = self.visualize(
            pairs,
            preds,
            show=show,
            wait_time=wait_time,
            img_out_dir=img_out_dir,
            opacity=opacity,
            return_vis=return_vis)
        results = self.postprocess(preds, visualization, return_datasamples,
                                   pred_out_dir)
        return results

    @staticmethod
    def _stem(image: Union[str, np.ndarray]) -> str:
        if isinstance(image, str):
            return osp.splitext(osp.basename(image))[0]
        return 'array'

    @staticmethod
    def _read_rgb(image: Union[str, np.ndarray]) -> np.ndarray:
        if isinstance(image, str):
            return mmcv.imread(image, channel_order='rgb')
        return image

    def visualize(self,
                  inputs: List[Tuple[Union[str, np.ndarray], str]],
                  preds: List[SegDataSample],
                  show: bool = False,
                  wait_time: float = 0,
                  img_out_dir: str = '',
                  opacity: Optional[float] = None,
                  return_vis: bool = False) -> Optional[List[np.ndarray]]:
        """Draw each predicted mask with its expression on its image.

        Predictions that carry activation maps (``return_activations``) are
        drawn by :meth:`RefSegLocalVisualizer.render_activations` (mask
        overlay | each activation map), the others by
        :meth:`RefSegLocalVisualizer.draw_overlay`.

        Args:
            inputs (list[tuple]): ``(image, text)`` pairs.
            preds (list[SegDataSample]): Predictions, same order.
            show (bool): Display the overlays.
            wait_time (float): Display time in seconds.
            img_out_dir (str): Write ``{stem}_{i}.png`` here when set.
            opacity (float, optional): Mask opacity in [0, 1].
            return_vis (bool): Return the overlays.

        Returns:
            list[np.ndarray] | None: RGB uint8 pictures if ``return_vis``:
            (H, W, 3) overlays, or (H + header, (1 + k) W, 3) with k
            activation maps.
        """
        if not (show or img_out_dir or return_vis):
            return None
        results = []
        for i, ((image, text), pred) in enumerate(zip(inputs, preds)):
            mask = pred.pred_sem_seg.data[0].cpu().numpy()
            activations = activation_maps_of(pred)
            if activations:
                overlay = self.visualizer.render_activations(
                    self._read_rgb(image),
                    mask,
                    activations,
                    text=text,
                    opacity=opacity)
            else:
                overlay = self.visualizer.draw_overlay(
                    self._read_rgb(image), mask, opacity=opacity, text=text)
            name = f'{self._stem(image)}_{i}'
            if show:
                self.visualizer.show(
                    overlay, win_name=name, wait_time=wait_time)
            if img_out_dir:
                mmcv.imwrite(
                    mmcv.rgb2bgr(overlay), osp.join(img_out_dir,
                                                    name + '.png'))
            if return_vis:
                results.append(overlay)
        return results if return_vis else None

    def postprocess(self,
                    preds: List[SegDataSample],
                    visualization: Optional[List[np.ndarray]],
                    return_datasamples: bool = False,
                    pred_out_dir: str = '') -> dict:
        """Pack masks and probabilities; write mask PNGs if asked.

        Args:
            preds (list[SegDataSample]): Predictions.
            visualization (list[np.ndarray], optional): Overlays.
            return_datasamples (bool): Add ``predictions``.
            pred_out_dir (str): Write ``{stem}_{i}.png`` (single channel,
                0 / 255) here when set, ``stem`` from the sample's
                ``img_path`` (``array`` for array inputs).

        Returns:
            dict: See :meth:`__call__`.
        """
        masks, probs = [], []
        for pred in preds:
            masks.append(pred.pred_sem_seg.data[0].cpu().numpy().astype(
                np.uint8))
            probs.append(pred.seg_logits.data[0].cpu().numpy().astype(
                np.float32))
        if pred_out_dir:
            mmengine.mkdir_or_exist(pred_out_dir)
            for i, (pred, mask) in enumerate(zip(preds, masks)):
                image = pred.metainfo.get('img_path')
                stem = self._stem(image) if image else 'array'
                mmcv.imwrite(mask * 255,
                             osp.join(pred_out_dir, f'{stem}_{i}.png'))
        results = dict(masks=masks, probabilities=probs)
        for key in ACTIVATION_FIELDS:
            if preds and all(key in p for p in preds):
                results[key + 's'] = [
                    p.get(key).data[0].cpu().numpy().astype(np.float32)
                    for p in preds
                ]
        if return_datasamples:
            results['predictions'] = list(preds)
        if visualization is not None:
            results['visualization'] = visualization
        return results
