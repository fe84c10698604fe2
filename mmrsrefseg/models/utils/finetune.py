# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""The one place that decides which parameters of a segmentor train.

A segmentor's config declares its fine-tuning policy (``finetune_cfg``);
:func:`apply_finetune_cfg` applies it after the model is built. No model
component freezes anything by itself.
"""
from typing import Dict, List, Optional, Sequence, Union

from mmengine.logging import print_log
from torch import nn

from mmrsrefseg.utils.lora import count_parameters, inject_lora

__all__ = ['apply_finetune_cfg', 'FINETUNE_KEYS', 'LORA_KEYS']

#: Keys of ``finetune_cfg``.
FINETUNE_KEYS = ('frozen', 'lora', 'unused')
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

    Everything else trains.

    Args:
        model (nn.Module): The segmentor (modified in place).
        cfg (dict, optional): ``frozen`` (list[str]), ``unused``
            (list[str]) and ``lora`` (dict: ``rank`` 16, ``alpha`` 16,
            ``dropout`` 0.1, ``merge_in_eval`` True (see
            :class:`~mmrsrefseg.utils.lora.MergedEvalLoRALinear`),
            ``targets``). None trains every parameter.

    Returns:
        dict[str, int]: LoRA-adapted module count per target path.

    Raises:
        KeyError: On unknown keys, or a path that names no module or
            parameter (the key and the path are named).
        ValueError: If a LoRA target spec matches no module.
    """
    if cfg is None:
        return {}
    cfg = dict(cfg)
    unknown = sorted(set(cfg) - set(FINETUNE_KEYS))
    if unknown:
        raise KeyError(f'Unknown finetune_cfg keys {unknown}; expected '
                       f'{list(FINETUNE_KEYS)}')
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
    total, trainable = count_parameters(model)
    print_log(
        f'{type(model).__name__}: {total / 1e6:.2f} M parameters, '
        f'{trainable / 1e6:.2f} M trainable',
        logger='current')
    return adapted
