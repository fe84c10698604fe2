# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""The one place that decides which parameters of a segmentor train.

A segmentor's config declares its fine-tuning policy (``finetune_cfg``);
:func:`apply_finetune_cfg` applies it after the model is built. No model
component freezes anything by itself.
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.logging import print_log
from torch import nn

from mmrsrefseg.utils.lora import count_parameters, inject_lora

__all__ = [
    'apply_finetune_cfg', 'FINETUNE_KEYS', 'LORA_KEYS', 'FROZEN_DTYPES',
    'frozen_dtype_of'
]

#: Keys of ``finetune_cfg``.
FINETUNE_KEYS = ('frozen', 'lora', 'unused', 'frozen_dtype')
#: Values of ``finetune_cfg['frozen_dtype']``.
FROZEN_DTYPES = dict(bfloat16=torch.bfloat16, float16=torch.float16)
#: Modules whose frozen weights ``frozen_dtype`` stores in half precision:
#: those autocast runs in half precision (it casts their weights at every
#: call otherwise).
_MATMUL_MODULES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
#: Keys of ``finetune_cfg['lora']`` and their defaults.
LORA_KEYS = dict(
    rank=16, alpha=16, dropout=0.1, merge_in_eval=True, targets=None)


def _get(model: nn.Module, path: str,
         field: str) -> Union[nn.Module, nn.Parameter]:
    """The submodule or parameter at dotted ``path`` of ``model``."""
    try:
        return model.get_submodule(path)
    except AttributeError:
        pass
    try:
        return model.get_parameter(path)
    except AttributeError:
        raise KeyError(f'finetune_cfg.{field}: {path!r} is neither a module '
                       f'nor a parameter of {type(model).__name__}') from None


def _parameters(target: Union[nn.Module, nn.Parameter]) -> List[nn.Parameter]:
    return [target] if isinstance(target, nn.Parameter) else list(
        target.parameters())


def frozen_dtype_of(cfg: Optional[dict]) -> Optional[torch.dtype]:
    """The ``frozen_dtype`` of a ``finetune_cfg`` as a torch dtype.

    Raises:
        ValueError: On a value other than None, ``'bfloat16'`` and
            ``'float16'``.
    """
    name = (cfg or {}).get('frozen_dtype')
    if name is None:
        return None
    if name not in FROZEN_DTYPES:
        raise ValueError(f'finetune_cfg.frozen_dtype must be None or one of '
                         f'{sorted(FROZEN_DTYPES)}, got {name!r}')
    return FROZEN_DTYPES[name]


def _store_frozen_in(model: nn.Module, dtype: torch.dtype) -> int:
    """Cast the frozen weights of linear / conv layers to ``dtype``.

    Only modules whose parameters all are frozen (a LoRA-adapted layer's
    ``base_layer``, not its adapters) and only linear / convolution layers:
    under autocast these run in half precision anyway, so storing their
    weights rounded once gives the very values autocast would cast them to
    at every call. Norms, embeddings, positional embeddings and scalars
    (e.g. SigLIP's logit scale) stay float32: autocast keeps norms in
    float32, and a half-precision embedding would make the residual stream
    half precision.

    Returns:
        int: Number of parameters (elements) cast.
    """
    count = 0
    for module in model.modules():
        if not isinstance(module, _MATMUL_MODULES):
            continue
        params = list(module.parameters(recurse=False))
        if not params or any(p.requires_grad for p in params):
            continue
        for p in params:
            p.data = p.data.to(dtype)
            count += p.numel()
    return count


def apply_finetune_cfg(model: nn.Module,
                       cfg: Optional[dict]) -> Dict[str, int]:
    """Apply a fine-tuning policy: what is frozen, where LoRA goes.

    In this order:

    1. ``lora``: peft LoRA adapters are injected into each submodule of
       ``targets`` (a dict: submodule path -> regular expression matched
       against the submodule's own module names with ``re.fullmatch``, or a
       list of module-name suffixes); every parameter of such a submodule
       except the adapters is frozen.
    2. ``frozen``: the parameters of these modules / parameters (dotted
       paths) are frozen, except LoRA adapters inside them (pretrained
       weights kept as they are, adapted through LoRA).
    3. ``unused``: these modules / parameters are frozen entirely, adapters
       included. They never reach the loss (e.g. SAM's IoU head, SigLIP's
       attention-pooling head); left trainable, DDP would wait for their
       gradients. The authors' code leaves them ``requires_grad=True`` and
       sets ``find_unused_parameters=True``.
    4. ``frozen_dtype`` (None: off): the frozen weights of linear and
       convolution layers are stored in this half-precision dtype
       (``'bfloat16'`` or ``'float16'``); trained parameters stay float32.
       Under autocast to the same dtype this is the same function (autocast
       would round these weights to it at every call) with half the memory
       for the frozen weights and no per-call weight casts. A half-precision
       weight cannot meet a float32 activation outside autocast, so the
       segmentor runs its forward under autocast to this dtype when no
       autocast is active (:class:`~mmrsrefseg.models.segmentors.
       BaseRefSegmentor`).

    Everything else trains.

    Args:
        model (nn.Module): The segmentor (modified in place).
        cfg (dict, optional): ``frozen`` (list[str]), ``unused``
            (list[str]) and ``lora`` (dict: ``rank`` 16, ``alpha`` 16,
            ``dropout`` 0.1, ``merge_in_eval`` True (see
            :class:`~mmrsrefseg.utils.lora.MergedEvalLoRALinear`),
            ``targets``) and ``frozen_dtype`` (None, ``'bfloat16'`` or
            ``'float16'``). None trains every parameter.

    Returns:
        dict[str, int]: LoRA-adapted module count per target path.

    Raises:
        KeyError: On unknown keys, or a path that names no module or
            parameter (the key and the path are named).
        ValueError: If a LoRA target spec matches no module, or on an
            unknown ``frozen_dtype``.
    """
    if cfg is None:
        return {}
    cfg = dict(cfg)
    unknown = sorted(set(cfg) - set(FINETUNE_KEYS))
    if unknown:
        raise KeyError(f'Unknown finetune_cfg keys {unknown}; expected '
                       f'{list(FINETUNE_KEYS)}')
    frozen_dtype = frozen_dtype_of(cfg)
    adapted = {}
    lora = cfg.get('lora')
    if lora is not None:
        unknown = sorted(set(lora) - set(LORA_KEYS))
        if unknown:
            raise KeyError(f'Unknown finetune_cfg.lora keys {unknown}; '
                           f'expected {list(LORA_KEYS)}')
        lora = {**LORA_KEYS, **lora}
        targets = lora.pop('targets')
        if not isinstance(targets, dict) or not targets:
            raise KeyError('finetune_cfg.lora.targets must be a non-empty '
                           'dict: submodule path -> regular expression or '
                           'list of module-name suffixes')
        for path, spec in targets.items():
            module = _get(model, path, 'lora.targets')
            matched = inject_lora(module, spec, **lora)
            for name, p in module.named_parameters():
                p.requires_grad_('lora_' in name)
            adapted[path] = len(matched)
            print_log(
                f'LoRA (rank {lora["rank"]}, alpha {lora["alpha"]}, dropout '
                f'{lora["dropout"]}) on {len(matched)} modules of {path}',
                logger='current')
    for field in ('frozen', 'unused'):
        paths: Sequence[str] = cfg.get(field) or ()
        for path in paths:
            target = _get(model, path, field)
            named = ([(path, target)] if isinstance(target, nn.Parameter) else
                     target.named_parameters())
            for name, p in named:
                if field == 'unused' or 'lora_' not in name:
                    p.requires_grad_(False)
    if frozen_dtype is not None:
        cast = _store_frozen_in(model, frozen_dtype)
        print_log(
            f'{cast / 1e6:.2f} M frozen linear / conv parameters stored in '
            f'{frozen_dtype}',
            logger='current')
    total, trainable = count_parameters(model)
    print_log(
        f'{type(model).__name__}: {total / 1e6:.2f} M parameters, '
        f'{trainable / 1e6:.2f} M trainable',
        logger='current')
    return adapted
