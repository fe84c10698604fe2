# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Checkpoints of what was trained, and strict loading of any checkpoint.

A paper-config RSRefSeg holds about a billion parameters, of which some
16 M train (LoRA matrices, the prompter, SAM's prompt encoder and mask
decoder); the rest are the frozen pretrained weights that the config names
(``backbone.pretrained``, ``decode_head.checkpoint``). A *trained-only*
checkpoint keeps everything except those frozen pretrained tensors (so the
trained parameters and every buffer that training changes, e.g. the
prompter's BN statistics) and records that it needs its base
(``meta['trained_only']``). Loading it takes the base from the config's
files again; a key that is neither in the checkpoint nor in the base, or a
base tensor of the wrong shape, is an error naming the key.

Every checkpoint a model loads for training, evaluation or inference goes
through :func:`model_state_from_checkpoint`, strict by default: a missing,
unexpected or mis-shaped key is an error naming the keys and the file,
raised before anything is scored.
"""
import logging
from typing import Dict, Set

from mmengine.logging import print_log
from torch import Tensor, nn

from mmrsrefseg.utils.checkpoint import (StateDictError, key_problems,
                                         state_dict_of)

__all__ = [
    'TRAINED_ONLY_KEY', 'frozen_pretrained_keys', 'make_trained_only',
    'model_state_from_checkpoint', 'is_trained_only', 'model_key_shapes'
]

#: ``checkpoint['meta']`` key of a trained-only checkpoint.
TRAINED_ONLY_KEY = 'trained_only'


def frozen_pretrained_keys(model: nn.Module) -> Set[str]:
    """State-dict keys that come from the config's pretrained files and do
    not train (what a trained-only checkpoint leaves out).

    Args:
        model (nn.Module): A segmentor with ``pretrained_components()``
            (:class:`~mmrsrefseg.models.segmentors.BaseRefSegmentor`).

    Returns:
        set[str]: Frozen parameters and persistent buffers of the pretrained
        components, LoRA matrices excluded.
    """
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    keys = set()
    for name, module in model.pretrained_components().items():
        for key in module.state_dict():
            full = f'{name}.{key}'
            if 'lora_' not in key and full not in trainable:
                keys.add(full)
    return keys


def is_trained_only(checkpoint: dict) -> bool:
    """Whether ``checkpoint`` is trained-only (needs its base weights)."""
    return bool((checkpoint.get('meta') or {}).get(TRAINED_ONLY_KEY))


def make_trained_only(model: nn.Module, checkpoint: dict) -> dict:
    """Drop the frozen pretrained tensors of ``checkpoint`` (in place).

    Args:
        model (nn.Module): The segmentor the checkpoint was taken of.
        checkpoint (dict): mmengine checkpoint (``state_dict``, ``meta``).

    Returns:
        dict: ``checkpoint``, whose ``state_dict`` keeps the trained
        parameters and the buffers outside the pretrained components, and
        whose ``meta['trained_only']`` records the base
        (``{component: pretrained source}``) and how many keys it gives.
    """
    drop = frozen_pretrained_keys(model)
    state = checkpoint['state_dict']
    checkpoint['state_dict'] = type(state)(
        (k, v) for k, v in state.items() if k not in drop)
    meta = checkpoint.setdefault('meta', {})
    meta[TRAINED_ONLY_KEY] = dict(
        base={
            name: module.pretrained_source
            for name, module in model.pretrained_components().items()
        },
        num_base_keys=len(drop))
    return checkpoint


def _check_recorded_base(model: nn.Module, checkpoint: dict,
                         source: str) -> None:
    """Warn when the config names other base files than training used.

    Only the paths are compared (the weights are not hashed: that would
    read gigabytes at every save), so the same files under another path
    warn too, and other files at the recorded path pass unnoticed.
    """
    record = checkpoint['meta'][TRAINED_ONLY_KEY]
    recorded = record.get('base') if isinstance(record, dict) else None
    current = {
        name: module.pretrained_source
        for name, module in model.pretrained_components().items()
    }
    if recorded is not None and recorded != current:
        print_log(
            f'{source} was trained on the base weights {recorded}; the '
            f'config names {current}, from which the frozen weights are '
            'read: they must hold the same weights',
            logger='current',
            level=logging.WARNING)


def model_state_from_checkpoint(model: nn.Module,
                                checkpoint: dict,
                                source: str,
                                strict: bool = True) -> Dict[str, Tensor]:
    """The complete state dict ``model`` should load from ``checkpoint``.

    A trained-only checkpoint is completed with the frozen pretrained
    weights the config names (read from the files, or taken from memory when
    the components are initialised already); trainable keys must come from
    the checkpoint itself. The result is then checked against the model:
    every key present, none unexpected, every shape equal.

    Args:
        model (nn.Module): The segmentor (a ``BaseRefSegmentor``; any
            ``nn.Module`` for full checkpoints).
        checkpoint (dict): mmengine checkpoint or bare state dict.
        source (str): The checkpoint file, named in errors.
        strict (bool): Raise on a mismatch. False only logs it (a
            documented escape hatch of ``tools/test.py --non-strict``).
            Defaults to True.

    Returns:
        dict[str, Tensor]: The state dict to load.

    Raises:
        StateDictError: (``strict``) On missing, unexpected or mis-shaped
            keys, naming the first keys, their count and the file.
        ValueError: If the checkpoint holds no state dict of tensors.
    """
    state = state_dict_of(checkpoint, source)
    trained_only = is_trained_only(checkpoint)
    hint = ''
    if trained_only:
        if not hasattr(model, 'pretrained_components'):
            raise ValueError(f'{source} is a trained-only checkpoint, but '
                             f'{type(model).__name__} names no pretrained '
                             'base weights')
        _check_recorded_base(model, checkpoint, source)
        base_keys = frozen_pretrained_keys(model)
        missing = [k for k in base_keys if k not in state]
        if missing:
            base = model.pretrained_state_dict()
            state.update({k: base[k] for k in missing if k in base})
        sources = ', '.join(
            f'{name}: {module.pretrained_source}'
            for name, module in model.pretrained_components().items())
        hint = (' (a trained-only checkpoint: its frozen pretrained weights '
                f'come from the config [{sources or "none configured"}])')
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    problems = key_problems(expected, state)
    if problems:
        message = (f'Checkpoint {source} does not fit {type(model).__name__}'
                   f'{hint}: ' + '; '.join(problems))
        if strict:
            raise StateDictError(message)
        print_log(
            f'{message}. Loading it anyway (non-strict): the missing '
            'weights keep their initial values.',
            logger='current',
            level=logging.WARNING)
        state = {
            k: v
            for k, v in state.items()
            if k in expected and tuple(v.shape) == expected[k]
        }
    print_log(
        f'Loaded {len(state)} tensors from {source}' +
        (' (trained-only checkpoint + pretrained base)'
         if trained_only else ''),
        logger='current')
    return state


def model_key_shapes(model_cfg, device: str = 'meta') -> Dict[str, tuple]:
    """State-dict keys and shapes of a config's model, no weights read.

    The model is built from ``model_cfg`` with its pretrained paths unset
    (``backbone.pretrained``, ``decode_head.checkpoint``), so no file is
    read; only key names and shapes are kept. The converters check what
    they write against it.

    Args:
        model_cfg (ConfigDict): ``model`` of an mmrsrefseg config (copied).
        device (str): Where to build: ``'meta'`` allocates nothing (RSRefSeg);
            SAM 2.1's Hiera cannot be built there (it reads tensor values
            while building), so RSRefSeg 2 is built on ``'cpu'``. Defaults
            to ``'meta'``.

    Returns:
        dict[str, tuple]: key -> shape.
    """
    import copy

    import torch
    from mmseg.registry import MODELS
    model_cfg = copy.deepcopy(model_cfg)
    model_cfg['backbone']['pretrained'] = None
    model_cfg['decode_head']['checkpoint'] = None
    with torch.device(device):
        model = MODELS.build(model_cfg)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}
