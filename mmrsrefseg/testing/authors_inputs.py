# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""What both authors' compositions share: their HF wrapper layout and the
preparation of their inputs (KyanChen/RSRefSeg and KyanChen/RSRefSeg2,
``extract_feat``: SAM's and SigLIP's normalisation, SigLIP's bilinear resize,
batch tokenisation). ``torchvision.transforms.functional.normalize`` is
written out (torchvision is not installable here).
"""
from typing import Callable, List, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

# HF processors: SamProcessor (ImageNet statistics), SiglipProcessor (0.5).
SAM_MEAN, SAM_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SIGLIP_MEAN, SIGLIP_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


class HFWrapper(nn.Module):
    """Holds an HF sub-model as ``.model`` (the authors' wrapper layout).

    The authors' wrappers also expose the HF config as ``.config``; with
    peft 0.21 and transformers 5 that attribute makes peft look up an HF
    weight-conversion mapping and fail on the wrapper, so it is kept as
    ``hf_config`` here (peft then treats the module as a custom model, as
    with the library versions the authors used).
    """

    def __init__(self, model: nn.Module, config, **extra):
        super().__init__()
        self.model = model
        self.hf_config = config
        for name, value in extra.items():
            setattr(self, name, value)

    def forward(self, *args, **kwargs):
        return self.model(*args, **kwargs)


def config_tokenizer(backbone: dict) -> Callable:
    """The tokenizer a backbone config names, loaded at its first call.

    Args:
        backbone (dict): ``model.backbone`` of a config: its ``tokenizer``
            directory, else its ``pretrained`` one.

    Returns:
        Callable: ``AutoTokenizer.from_pretrained(path)(*args, **kwargs)``.
    """
    path = backbone.get('tokenizer') or backbone.get('pretrained')

    def tokenizer(*args, **kwargs):
        from transformers import AutoTokenizer
        return AutoTokenizer.from_pretrained(path)(*args, **kwargs)

    return tokenizer


def normalize(x: Tensor, mean: Sequence[float],
              std: Sequence[float]) -> Tensor:
    mean = x.new_tensor(mean).view(1, -1, 1, 1)
    std = x.new_tensor(std).view(1, -1, 1, 1)
    return (x - mean) / std


def siglip_inputs(inputs: Tensor, texts: List[str], size: int,
                  tokenizer) -> tuple:
    """The SigLIP inputs of the authors' ``extract_feat`` (both models).

    Images normalised with SigLIP's statistics, then resized bilinearly
    (no antialiasing) to ``size``; texts tokenised as a batch with
    ``padding=True, truncation=True, max_length=128``.

    Args:
        inputs (Tensor): (B, 3, S, S) RGB in [0, 1].
        texts (list[str]): B referring expressions.
        size (int): SigLIP's input size.
        tokenizer: The SigLIP tokenizer.

    Returns:
        tuple[Tensor, dict]: (B, 3, size, size) pixels, the tokenizer's
        tensors on the images' device.
    """
    x_clip = F.interpolate(
        normalize(inputs, SIGLIP_MEAN, SIGLIP_STD),
        size=[size, size],
        mode='bilinear',
        align_corners=False)
    text_dict = tokenizer(
        texts,
        return_tensors='pt',
        padding=True,
        truncation=True,
        max_length=128)
    return x_clip, {k: v.to(inputs.device) for k, v in text_dict.items()}
