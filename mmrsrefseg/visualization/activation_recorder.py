# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Capture a segmentor's activation maps during prediction."""
from typing import Dict, List, Sequence

import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import is_model_wrapper
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from torch import Tensor

#: Every activation map a neck may declare: data-sample field -> the title
#: of its picture, in drawing order. RSRefSeg (``TextFilterNeck``): the
#: global activation ``sigmoid(Z_g)`` and the mean local activation;
#: RSRefSeg 2 (``CascadedPrompter``): the dense-prompt activation, the
#: sigmoid of SAM 2.1's mask prompt.
ACTIVATION_TITLES = {
    'global_activation': 'global activation sigmoid(Z_g)',
    'mean_local_activation': 'mean local activation',
    'dense_prompt_activation': 'dense-prompt activation',
}
#: Data-sample fields that :meth:`ActivationRecorder.attach` may set.
ACTIVATION_FIELDS = tuple(ACTIVATION_TITLES)


def activation_maps_of(data_sample: SegDataSample) -> Dict[str, Tensor]:
    """The activation maps a data sample carries, in drawing order.

    Args:
        data_sample (SegDataSample): A sample, with or without maps.

    Returns:
        dict[str, Tensor]: Field (see :data:`ACTIVATION_TITLES`) -> its
        ``data`` (1, H, W); empty when the sample has none.
    """
    return {
        key: data_sample.get(key).data
        for key in ACTIVATION_FIELDS if key in data_sample
    }


def activation_to_image(activation: Tensor, metainfo: dict) -> Tensor:
    """Resample a feature-grid map to the original image.

    The map covers the whole (padded) model input, like the mask logits:
    it is bilinearly upsampled to the input size (``pad_shape``, else
    ``img_shape``), the padding the data preprocessor added is cut off
    (``img_padding_size`` / ``padding_size``, (left, right, top, bottom) in
    px) and the rest is bilinearly resized to ``ori_shape`` -- the steps of
    mmseg's ``EncoderDecoder.postprocess_result`` for the mask.

    Args:
        activation (Tensor): (h, w) map on the neck's grid (CLIP's patch
            grid, SAM's mask-input grid) covering the padded input.
        metainfo (dict): The sample's metainfo with ``img_shape`` and
            ``ori_shape`` (optionally ``pad_shape``, ``padding_size``).

    Returns:
        Tensor: float32 (H, W) map at ``ori_shape``, values between the
        input's minimum and maximum (bilinear interpolation).

    Raises:
        ValueError: If ``activation`` is not 2-D.
        KeyError: If ``img_shape`` or ``ori_shape`` is missing.
    """
    if activation.dim() != 2:
        raise ValueError('activation must be a (h, w) map, got shape '
                         f'{tuple(activation.shape)}')
    for key in ('img_shape', 'ori_shape'):
        if key not in metainfo:
            raise KeyError(f'Data sample metainfo has no {key!r}; keys: '
                           f'{sorted(metainfo)}')
    in_h, in_w = metainfo.get('pad_shape', metainfo['img_shape'])[:2]
    x = F.interpolate(
        activation[None, None].float(),
        size=(int(in_h), int(in_w)),
        mode='bilinear',
        align_corners=False)
    pad = metainfo.get('img_padding_size',
                       metainfo.get('padding_size', [0, 0, 0, 0]))
    left, right, top, bottom = (int(p) for p in pad)
    x = x[..., top:int(in_h) - bottom, left:int(in_w) - right]
    x = F.interpolate(
        x,
        size=tuple(int(s) for s in metainfo['ori_shape'][:2]),
        mode='bilinear',
        align_corners=False)
    return x[0, 0]


class ActivationRecorder:
    """Record the activation maps of a segmentor's neck while predicting.

    The neck declares its activation maps: ``activation_fields`` (their
    data-sample fields, each a key of :data:`ACTIVATION_TITLES`) and
    ``activation_maps(outputs)``, which computes them from its forward
    outputs as (B, h, w) maps in [0, 1]:

    - RSRefSeg's ``TextFilterNeck``: ``global_activation`` ``sigmoid(Z_g)``
      and ``mean_local_activation`` on CLIP's patch grid, the text-filtered
      activation that explains the mask (arXiv:2501.06809, Sec. III-B);
    - RSRefSeg 2's ``CascadedPrompter``: ``dense_prompt_activation``, the
      sigmoid of the dense prompt SAM 2.1 gets (mask prompt logits, SigLIP
      scale x cosine + bias), on SAM 2.1's mask-input grid.

    While active (``with`` block, or :meth:`start` / :meth:`stop`), a
    forward hook on the neck keeps the maps of every sample the neck sees.
    They come from the very forward pass that predicts the mask, so
    recording costs one copy of the maps per batch; without a recorder no
    hook is registered and prediction is unchanged. :meth:`attach` moves
    the recorded maps into the predicted data samples, at each image's
    original size.

    Args:
        model (nn.Module): A segmentor (or a model wrapper around one) whose
            ``neck`` declares activation maps.

    Raises:
        TypeError: If the model has no ``neck``, or the neck declares no
            activation maps.
        KeyError: If the neck declares a field that is not in
            :data:`ACTIVATION_TITLES`.

    Examples:
        >>> with ActivationRecorder(model) as recorder:
        ...     preds = model.test_step(batch)
        ...     recorder.attach(preds)
        >>> preds[0].global_activation.data.shape  # (1, H, W)
    """

    def __init__(self, model: nn.Module) -> None:
        if is_model_wrapper(model):
            model = model.module
        neck = getattr(model, 'neck', None)
        if not isinstance(neck, nn.Module):
            raise TypeError(
                'Activation maps are read from the segmentor\'s neck, but '
                f'{type(model).__name__} has none')
        fields = tuple(getattr(neck, 'activation_fields', None) or ())
        if not fields or not callable(getattr(neck, 'activation_maps', None)):
            raise TypeError(
                f'{type(neck).__name__} declares no activation maps (an '
                '`activation_fields` tuple and an `activation_maps(outputs)` '
                'method, as TextFilterNeck and CascadedPrompter have)')
        unknown = [f for f in fields if f not in ACTIVATION_TITLES]
        if unknown:
            raise KeyError(f'{type(neck).__name__} declares activation maps '
                           f'{unknown} that have no title; known: '
                           f'{list(ACTIVATION_TITLES)}')
        self.neck = neck
        #: Data-sample fields of the recorded maps, in drawing order.
        self.fields = tuple(f for f in ACTIVATION_FIELDS if f in fields)
        self._handle = None
        self._maps: List[Dict[str, Tensor]] = []

    @property
    def active(self) -> bool:
        """Whether the hook is registered."""
        return self._handle is not None

    def start(self) -> 'ActivationRecorder':
        """Register the hook (no-op when already active) and clear."""
        self._maps = []
        if self._handle is None:
            self._handle = self.neck.register_forward_hook(self._hook)
        return self

    def stop(self) -> None:
        """Remove the hook and drop what was not attached."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self._maps = []

    def __enter__(self) -> 'ActivationRecorder':
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _hook(self, module: nn.Module, args, outputs: dict) -> None:
        if not isinstance(outputs, dict):
            raise TypeError(f'{type(module).__name__} returned '
                            f'{type(outputs).__name__}, not a dict of '
                            'outputs; no activation maps can be read')
        maps = module.activation_maps(outputs)
        if sorted(maps) != sorted(self.fields):
            raise KeyError(f'{type(module).__name__}.activation_maps '
                           f'returned {sorted(maps)}, it declares '
                           f'{list(self.fields)}')
        maps = {k: v.detach().float().cpu() for k, v in maps.items()}
        for i in range(len(maps[self.fields[0]])):
            self._maps.append({k: maps[k][i] for k in self.fields})

    def clear(self) -> None:
        """Drop the recorded maps not attached yet (e.g. of undrawn
        batches)."""
        self._maps = []

    @property
    def num_pending(self) -> int:
        """Number of recorded samples not attached yet."""
        return len(self._maps)

    def attach(self,
               data_samples: Sequence[SegDataSample]) -> List[SegDataSample]:
        """Put the recorded maps of these samples into them.

        The samples must be those of the forward passes recorded since the
        last call, in order (one neck pass per batch, ``test_cfg.mode =
        'whole'``). Each gets the neck's maps (:attr:`fields`, e.g.
        ``global_activation`` and ``mean_local_activation`` for RSRefSeg,
        ``dense_prompt_activation`` for RSRefSeg 2) as :obj:`PixelData`,
        float32 (1, H, W) in [0, 1] at the original image size (see
        :func:`activation_to_image`).

        Args:
            data_samples (Sequence[SegDataSample]): Predicted samples with
                metainfo ``img_shape`` and ``ori_shape``.

        Returns:
            list[SegDataSample]: The same samples.

        Raises:
            RuntimeError: If the recorder is not active or the number of
                recorded maps is not the number of samples (e.g. sliding
                window inference, which runs the neck once per crop).
        """
        if not self.active:
            raise RuntimeError('ActivationRecorder is not active; use it as '
                               'a context manager or call start()')
        if len(self._maps) != len(data_samples):
            count = len(self._maps)
            self._maps = []
            raise RuntimeError(
                f'Recorded activation maps of {count} samples for '
                f'{len(data_samples)} predictions; activation maps need '
                "one neck pass per batch (test_cfg.mode='whole')")
        maps, self._maps = self._maps, []
        for sample, sample_maps in zip(data_samples, maps):
            for key in self.fields:
                image_map = activation_to_image(sample_maps[key],
                                                sample.metainfo)
                sample.set_field(PixelData(data=image_map[None]), key)
        return list(data_samples)
