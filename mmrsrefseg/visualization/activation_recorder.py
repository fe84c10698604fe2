# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Capture RSRefSeg's text-filtered activation maps during prediction."""
from typing import Dict, List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import is_model_wrapper
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from torch import Tensor

#: Data-sample fields set by :meth:`ActivationRecorder.attach`.
ACTIVATION_FIELDS = ('global_activation', 'mean_local_activation')


def activation_to_image(activation: Tensor, metainfo: dict) -> Tensor:
    """Resample a feature-grid map to the original image.

    The map covers the whole (padded) model input, like the mask logits:
    it is bilinearly upsampled to the input size (``pad_shape``, else
    ``img_shape``), the padding the data preprocessor added is cut off
    (``img_padding_size`` / ``padding_size``, (left, right, top, bottom) in
    px) and the rest is bilinearly resized to ``ori_shape`` -- the steps of
    mmseg's ``EncoderDecoder.postprocess_result`` for the mask.

    Args:
        activation (Tensor): (h, w) map on CLIP's patch grid.
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
    """Record the activation maps of RSRefSeg's text filter while predicting.

    RSRefSeg explains its masks by the text-filtered activation of CLIP's
    patch features (arXiv:2501.06809, Sec. III-B). While active (``with``
    block, or :meth:`start` / :meth:`stop`), a forward hook on the
    segmentor's neck (``TextFilterNeck``) keeps, for every sample the neck
    sees, two maps on CLIP's patch grid (h, w):

    - ``global_activation``: ``sigmoid(Z_g)`` of the global logits
      ``global_logits``, in [0, 1];
    - ``mean_local_activation``: the local activation averaged over the
      expression's real tokens (``mean_local_activation`` of the neck), in
      [0, 1].

    The maps come from the very forward pass that predicts the mask, so
    recording costs one copy of two (B, h, w) tensors per batch; without a
    recorder no hook is registered and prediction is unchanged.
    :meth:`attach` moves the recorded maps into the predicted data samples,
    at each image's original size.

    Args:
        model (nn.Module): An RSRefSeg segmentor (or a model wrapper around
            one) whose ``neck`` returns ``global_logits`` and
            ``mean_local_activation``.

    Raises:
        TypeError: If the model has no ``neck``.

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
                'Activation maps are read from the segmentor\'s neck '
                f'(TextFilterNeck), but {type(model).__name__} has none')
        self.neck = neck
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
        got = sorted(outputs) if isinstance(outputs, dict) else \
            type(outputs).__name__
        missing = [
            k for k in ('global_logits', 'mean_local_activation')
            if not isinstance(outputs, dict) or k not in outputs
        ]
        if missing:
            raise KeyError(f'{type(module).__name__} outputs lack {missing} '
                           f'(got {got}); activation maps need a '
                           'TextFilterNeck')
        global_act = torch.sigmoid(outputs['global_logits'].detach().float())
        local_act = outputs['mean_local_activation'].detach().float()
        for g, m in zip(global_act.cpu(), local_act.cpu()):
            self._maps.append(
                dict(global_activation=g, mean_local_activation=m))

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
        'whole'``). Each gets ``global_activation`` and
        ``mean_local_activation`` (:obj:`PixelData`, float32 (1, H, W) in
        [0, 1] at the original image size, see
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
            for key in ACTIVATION_FIELDS:
                image_map = activation_to_image(sample_maps[key],
                                                sample.metainfo)
                sample.set_field(PixelData(data=image_map[None]), key)
        return list(data_samples)
