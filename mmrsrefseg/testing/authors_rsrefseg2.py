# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""The RSRefSeg 2 authors' composition, rebuilt for parity tests.

A re-implementation (not a copy) of the forward graph and training loss of
the authors' public code (KyanChen/RSRefSeg2, ``refseg/models/models.py``:
``RefSegEncoderDecoder`` with ``RefSegSam``, ``RefSegSiglipVisionModel``,
``RefSegSiglipTextModel``, ``CascadedPrompter`` and ``PseudoSegHead``; the
model of ``configs_RSRefSeg2/{rrsisd,refsegrs,risbench}_training.py``) from
the libraries they use: Meta's ``sam2`` (their vendored copy is sam2 1.1.0
with dtype casts that are identities in fp32: FPN top-down interpolation in
the lateral dtype, the random position encoding in the coordinates' dtype),
transformers' ``SiglipModel`` (the fixed-resolution SigLIP2 checkpoints use
the SigLIP architecture), peft's ``get_peft_model`` with their LoRA configs,
mmseg's ``CrossEntropyLoss`` / ``DiceLoss``. Module names equal theirs, so
:meth:`AuthorsRSRefSeg2.state_dict` has the key layout of their released
checkpoints (``clip_vision_encoder.base_model.model.model.*``,
``clip_text_encoder.base_model.model.{model.*,logit_scale,logit_bias}``,
``backbone.model.image_encoder.base_model.model.{trunk,neck}.*``,
``backbone.model.{sam_mask_decoder,sam_prompt_encoder,no_mem_embed}``,
``prompter.*``, ``decode_head.logit_{scale,bias}{1,2}``).

Kept on purpose, although mmrsrefseg corrects some of it (their pitfalls):

- Texts are tokenised as a batch with ``padding=True, truncation=True,
  max_length=128`` and passed as the tokenizer returns them. The SigLIP2
  tokenizer returns no attention mask (``model_input_names=['input_ids']``,
  as HF's SigLIP2 conversion writes it), so the text tower attends to the
  padding of short expressions, the pooled text feature is the last position
  (a padding token for all but the longest), and the query init pools
  padding: a prediction depends on the other expressions in the batch.
  Expressions longer than SigLIP's 64 positions crash.
- The prompter's BatchNorm is plain ``nn.BatchNorm2d`` (not synchronised).
- Dice and InfoNCE use the raw label map: padding (255) counts as a target
  of value 255 in the Dice and as foreground in the InfoNCE mask.
- The image side of InfoNCE is V0 masked by the label and averaged over all
  g*g cells (not over the mask), then L2-normalised; ``logit_bias2`` (init
  log 0.5) is added to every logit, which cancels in the softmax.
- SAM 2.1's mask decoder is called directly, so its object-score gating is
  not applied, and in eval (``not self.training``) the dynamic multimask
  fallback via stability picks the best of the three multimask outputs when
  the single-mask logits are unstable (train: mask token 0).

Deviations (cannot matter numerically): weights are random (configs built,
nothing downloaded); ``torchvision.transforms.functional.normalize`` is
written out; their DiceLoss (a patched mmseg copy that compares a 1-channel
prediction with ``label.unsqueeze(1)``) is stock mmseg's ``DiceLoss`` given
that same (B, 1, H, W) target; the loss gathers InfoNCE features only when a
process group exists (theirs calls ``torch.distributed.get_rank()``
unconditionally and crashes in one process); the HF wrappers keep the HF
config as ``hf_config`` (peft 0.21 + transformers 5 look up a weight-
conversion mapping on any ``config`` attribute and fail on the wrapper); the
unconfigured loss options (dense-prompt loss, per-image and MIL terms) and
``acc_seg`` are left out.

Against the paper's description (arXiv:2507.06231, abstract: "CLIP" activates
the target, a cascaded second-order prompter decomposes the text embeddings
into complementary semantic subspaces whose prompts direct SAM) the code is
followed where it is more specific or different: "CLIP" is SigLIP2
so400m-patch16-512; the two query sets are the same average pooling of the
text tokens (Q1 = Q2 at the start) and become different only through their
own position embeddings and weights, pushed apart by a squared-cosine loss on
their means; step 1 refines the SigLIP tokens with Q1 and discards the
refined Q1; the dense prompt is the cosine map of the refined SigLIP tokens
(after a conv-BN-GELU-conv) with SigLIP's pooled text t, not with the
queries; SAM 2.1 gets 9 sparse prompts from learnable prompt tokens that read
Q2 and the refined image.
"""
import copy
import math
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmrsrefseg.utils.sam2_import import build_sam2_model, sam2_model_cfg
from .authors_cascaded_prompter import AuthorsCascadedPrompter
from .authors_inputs import (SAM_MEAN, SAM_STD, HFWrapper, config_tokenizer,
                             normalize, siglip_inputs)
from .authors_pseudo_seg_head import AuthorsPseudoSegHead
from .rsrefseg2_configs import (rsrefseg2_model_cfg, tiny_rsrefseg2_cfg,
                                tiny_sam2_cfg)

__all__ = [
    'AUTHORS_LORA_CFG', 'AuthorsRSRefSeg2', 'tiny_sam2_cfg',
    'tiny_rsrefseg2_cfg', 'rsrefseg2_model_cfg', 'build_authors_rsrefseg2',
    'build_authors_rsrefseg2_from_config', 'randomise_weights',
    'save_authors_checkpoint', 'load_authors_checkpoint'
]

# ``model.lora_cfg`` of configs_RSRefSeg2/*_training.py (their SAM 1 entry,
# ``backbone.model.vision_encoder``, is dropped for SAM 2 by their code).
AUTHORS_LORA_CFG = {
    'backbone.model.image_encoder':
    dict(
        r=16,
        lora_alpha=16,
        lora_dropout=0.,
        target_modules=r'^(trunk\.blocks\.\d+\.attn\.(qkv|proj)|'
        r'neck\.convs\.\d+\.conv)$'),
    'clip_vision_encoder':
    dict(
        r=16,
        lora_alpha=16,
        lora_dropout=0.,
        target_modules=r'^(model\.head\.(attention\.out_proj|mlp\.fc[12])|'
        r'model\.encoder\.layers\.\d+\.self_attn\.'
        r'(k_proj|v_proj|q_proj|out_proj))$'),
    'clip_text_encoder':
    dict(
        r=16,
        lora_alpha=16,
        lora_dropout=0.,
        target_modules=r'^(model\.head|model\.encoder\.layers\.\d+\.'
        r'self_attn\.(k_proj|v_proj|q_proj|out_proj))$'),
}
# The SAM2Base modules RefSegSam keeps; every other one is deleted.
_SAM2_USED = ('no_mem_embed', 'image_encoder', 'sam_mask_decoder',
              'sam_prompt_encoder')


class _AuthorsSam2(nn.Module):
    """Their ``RefSegSam`` for SAM 2: the pruned ``SAM2Base`` as ``model``."""

    def __init__(self, sam2_cfg: dict):
        super().__init__()
        model = build_sam2_model(sam2_cfg)
        for name in {n.split('.')[0] for n, _ in model.named_parameters()}:
            if name not in _SAM2_USED:
                delattr(model, name)
        self.model = model

    def forward(self, inputs: Tensor, sparse_prompts: Tensor,
                dense_prompts: Tensor) -> Tensor:
        return authors_sam2_masks(self.model, inputs, sparse_prompts,
                                  dense_prompts)[1]


def authors_sam2_masks(sam: nn.Module, inputs: Tensor, sparse_prompts: Tensor,
                       dense_prompts: Tensor) -> Tuple[List[Tensor], Tensor]:
    """Their ``RefSegSam.forward`` on Meta's ``SAM2Base``.

    ImageNet normalisation, ``forward_image``, ``_prepare_backbone_features``,
    ``no_mem_embed``, the prompt encoder (mask prompt only) and the mask
    decoder with the high-resolution features, one mask per prompt.

    Args:
        sam (nn.Module): A ``sam2.modeling.sam2_base.SAM2Base``.
        inputs (Tensor): (B, 3, S, S) RGB in [0, 1].
        sparse_prompts (Tensor): (B, N, C) sparse prompt embeddings.
        dense_prompts (Tensor): (B, 1, S/4, S/4) mask prompt (logits).

    Returns:
        tuple: The image features, finest first, each (B, C_i, H_i, W_i)
        (the last one with ``no_mem_embed`` added), and the (B, 1, S/4, S/4)
        mask logits.
    """
    out = sam.forward_image(normalize(inputs, SAM_MEAN, SAM_STD))
    _, feats, _, sizes = sam._prepare_backbone_features(out)
    if sam.directly_add_no_mem_embed:
        feats[-1] = feats[-1] + sam.no_mem_embed
    feats = [
        f.permute(1, 2, 0).reshape(f.size(1), f.size(2), h, w)
        for f, (h, w) in zip(feats, sizes)
    ]
    _, dense = sam.sam_prompt_encoder(
        points=None, boxes=None, masks=dense_prompts)
    masks, _, _, _ = sam.sam_mask_decoder(
        image_embeddings=feats[-1],
        image_pe=sam.sam_prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse_prompts,
        dense_prompt_embeddings=dense,
        multimask_output=False,
        repeat_image=False,
        high_res_features=feats[:-1])
    return feats, masks


class AuthorsRSRefSeg2(nn.Module):
    """The authors' RSRefSeg 2 (SigLIP2 + SAM 2.1 + cascaded prompter).

    Args:
        sam2_cfg (dict): ``SAM2Base`` config (:func:`~mmrsrefseg.utils.
            sam2_import.sam2_model_cfg`, or :func:`tiny_sam2_cfg`).
        siglip_config (transformers.SiglipConfig): SigLIP(2) architecture.
        tokenizer: The SigLIP2 (Gemma) tokenizer, called as theirs.
        prompter_cfg (dict, optional): Extra :class:`AuthorsCascadedPrompter`
            kwargs (heads, widths); the feature widths and the image
            position-embedding side come from the two configs.
        lora_cfg (dict, optional): Per-part ``LoraConfig`` kwargs keyed like
            :data:`AUTHORS_LORA_CFG` (the default).
    """

    def __init__(self,
                 sam2_cfg: dict,
                 siglip_config,
                 tokenizer,
                 prompter_cfg: Optional[dict] = None,
                 lora_cfg: Optional[dict] = None):
        super().__init__()
        from peft import LoraConfig, get_peft_model
        from transformers import SiglipModel
        siglip = SiglipModel(siglip_config)
        vision = siglip_config.vision_config
        self.tokenizer = tokenizer
        self.clip_image_size = int(vision.image_size)
        grid = vision.image_size // vision.patch_size
        self.backbone = _AuthorsSam2(sam2_cfg)
        self.clip_vision_encoder = HFWrapper(siglip.vision_model,
                                             siglip.vision_model.config)
        self.clip_text_encoder = HFWrapper(
            siglip.text_model,
            siglip.text_model.config,
            logit_scale=siglip.logit_scale,
            logit_bias=siglip.logit_bias)
        self.prompter = AuthorsCascadedPrompter(
            text_dim=siglip_config.text_config.hidden_size,
            img_dim=vision.hidden_size,
            prompt_dim=self.backbone.model.hidden_dim,
            img_pe_size=grid,
            **(prompter_cfg or {}))
        self.decode_head = AuthorsPseudoSegHead(dst_size=grid)
        lora_cfg = AUTHORS_LORA_CFG if lora_cfg is None else lora_cfg
        for key in ('backbone.model.image_encoder', 'clip_vision_encoder',
                    'clip_text_encoder'):
            *parents, attr = key.split('.')
            owner = self
            for part in parents:
                owner = getattr(owner, part)
            config = LoraConfig(**copy.deepcopy(lora_cfg[key]))
            setattr(owner, attr, get_peft_model(getattr(owner, attr), config))
        self.clip_text_encoder.logit_scale.requires_grad_(True)
        self.clip_text_encoder.logit_bias.requires_grad_(True)

    def forward(self, inputs: Tensor, texts: List[str]) -> Dict[str, Tensor]:
        """Their ``extract_feat`` (prompter + ``RefSegSam.forward``).

        Args:
            inputs (Tensor): (B, 3, S, S) RGB in [0, 1] (their data
                preprocessor divides by 255), S = SAM 2.1's input size.
            texts (list[str]): B referring expressions.

        Returns:
            dict: ``seg_mask`` (B, 1, S/4, S/4) mask logits, plus every
            :meth:`AuthorsCascadedPrompter.forward` output.
        """
        x_clip, text_dict = siglip_inputs(inputs, texts, self.clip_image_size,
                                          self.tokenizer)
        visual = self.clip_vision_encoder(
            x_clip, interpolate_pos_encoding=False)['last_hidden_state']
        text = self.clip_text_encoder(**text_dict)
        sam = self.backbone.model
        results = self.prompter(
            clip_visual_feat=visual,
            clip_text_feat=text['last_hidden_state'],
            clip_text_feat_pooler=text['pooler_output'],
            logit_scale=self.clip_text_encoder.logit_scale,
            logit_bias=self.clip_text_encoder.logit_bias,
            mask_size=sam.sam_prompt_encoder.mask_input_size[0])
        results['seg_mask'] = self.backbone(inputs, results['sparse_prompts'],
                                            results['dense_prompts'])
        return results

    def loss(self, inputs: Tensor, texts: List[str],
             gt: Tensor) -> Dict[str, Tensor]:
        """Their training loss (``PseudoSegHead.loss_by_feat``).

        Args:
            inputs (Tensor): (B, 3, S, S) RGB in [0, 1].
            texts (list[str]): B referring expressions.
            gt (Tensor): (B, H, W) int64 labels in {0, 1, 255}.

        Returns:
            dict[str, Tensor]: Scalars, weights applied: ``decode.loss_ce``
            (BCE x5 at H x W, mean over all pixels, 255 ignored),
            ``decode.loss_dice`` (x5), ``decode.loss_text_queries1_queries2``
            (x0.5), ``decode.loss_perbatch_refined_img_feat_map_perbatch``
            (InfoNCE x0.5).
        """
        return self.decode_head.loss(self(inputs, texts), gt)

    @torch.no_grad()
    def predict(
            self,
            inputs: Tensor,
            texts: List[str],
            ori_shapes: Sequence[Sequence[int]],
            img_shapes: Optional[Sequence[Sequence[int]]] = None) -> Tensor:
        """Their test path: logits to the padded size, crop, resize, > 0.5.

        ``PseudoSegHead.predict_by_feat`` resizes the (B, 1, S/4, S/4)
        logits bilinearly (``align_corners=False``) to the padded input size
        S; mmseg's ``postprocess_result`` crops the bottom/right padding,
        resizes to the original size and thresholds ``sigmoid > 0.5``.

        Args:
            inputs (Tensor): (B, 3, S, S) RGB in [0, 1].
            texts (list[str]): B referring expressions.
            ori_shapes (sequence): B original (H, W).
            img_shapes (sequence, optional): B resized (h, w) before padding;
                None = no padding.

        Returns:
            list[Tensor]: B boolean masks of their original (H, W).
        """
        logits = F.interpolate(
            self(inputs, texts)['seg_mask'],
            size=inputs.shape[-2:],
            mode='bilinear',
            align_corners=False)
        img_shapes = img_shapes or [inputs.shape[-2:]] * len(texts)
        masks = []
        for logit, (h, w), ori in zip(logits, img_shapes, ori_shapes):
            logit = F.interpolate(
                logit[None, :, :h, :w],
                size=tuple(ori),
                mode='bilinear',
                align_corners=False)
            masks.append(logit[0, 0].sigmoid() > 0.5)
        return masks


def build_authors_rsrefseg2(
        cfg: dict,
        tokenizer,
        lora_cfg: Optional[dict] = None) -> AuthorsRSRefSeg2:
    """The reference from a :func:`tiny_rsrefseg2_cfg`-style dict.

    Args:
        cfg (dict): ``sam2``, ``siglip`` (``SiglipConfig`` kwargs) and
            ``prompter`` entries.
        tokenizer: The SigLIP2 tokenizer.
        lora_cfg (dict, optional): See :class:`AuthorsRSRefSeg2`.

    Returns:
        AuthorsRSRefSeg2: In train mode.
    """
    from transformers import SiglipConfig
    return AuthorsRSRefSeg2(
        cfg['sam2'],
        SiglipConfig(**copy.deepcopy(cfg['siglip'])),
        tokenizer,
        prompter_cfg=cfg.get('prompter'),
        lora_cfg=lora_cfg)


def build_authors_rsrefseg2_from_config(model_cfg: dict,
                                        tokenizer=None) -> AuthorsRSRefSeg2:
    """The authors' composition with the shapes of an ``RSRefSeg2`` config.

    SAM 2.1 from ``decode_head.preset`` (the packaged SAM 2.1 config) or
    ``decode_head.sam2_cfg``; SigLIP from ``backbone.config``; the prompter's
    widths from ``neck``; LoRA rank, alpha and dropout from
    ``finetune_cfg.lora`` on the authors' targets (:data:`AUTHORS_LORA_CFG`).
    Weights are random (nothing is read).

    Args:
        model_cfg (dict): ``model`` of an RSRefSeg 2 config.
        tokenizer: The SigLIP2 tokenizer; None reads the config's
            ``backbone.tokenizer`` / ``backbone.pretrained`` on first use
            (only :meth:`AuthorsRSRefSeg2.forward` tokenises).

    Returns:
        AuthorsRSRefSeg2: In train mode.

    Raises:
        ValueError: If the config is not an RSRefSeg 2 model with a SigLIP
            backbone, or its prompter depths differ (the authors' prompter
            has one depth for its three stages).
    """
    from transformers import SiglipConfig
    backbone, neck = model_cfg['backbone'], model_cfg['neck']
    head = model_cfg['decode_head']
    if model_cfg.get('type') != 'RSRefSeg2' or backbone.get(
            'model_type') != 'siglip':
        raise ValueError(
            "The authors' RSRefSeg 2 needs an RSRefSeg2 model with a SigLIP "
            f"backbone; got type={model_cfg.get('type')!r}, "
            f"model_type={backbone.get('model_type')!r}")
    depths = {
        k: neck.get(k, 2)
        for k in ('two_query_depth', 'step1_depth', 'step2_depth')
    }
    if len(set(depths.values())) != 1:
        raise ValueError("The authors' prompter has one depth for its three "
                         f'stages; the config has {depths}')
    if tokenizer is None:
        tokenizer = config_tokenizer(backbone)
    sam2_cfg = copy.deepcopy(
        head['sam2_cfg']) if head.get('preset') is None else sam2_model_cfg(
            head['preset'])
    lora = (model_cfg.get('finetune_cfg') or {}).get('lora') or {}
    lora_cfg = copy.deepcopy(AUTHORS_LORA_CFG)
    for part in lora_cfg.values():
        part.update(
            r=lora.get('rank', 16),
            lora_alpha=lora.get('alpha', 16),
            lora_dropout=lora.get('dropout', 0.))
    prompter_cfg = dict(
        num_text_queries=neck.get('num_queries', 3),
        num_prompts=neck.get('num_prompts', 9),
        num_heads=neck.get('num_heads', 8),
        internal_dim=neck.get('attn_channels', 512),
        mlp_dim=neck.get('ffn_channels', 512),
        depth=depths['two_query_depth'])
    return AuthorsRSRefSeg2(
        sam2_cfg,
        SiglipConfig(**copy.deepcopy(backbone['config'])),
        tokenizer,
        prompter_cfg=prompter_cfg,
        lora_cfg=lora_cfg)


def randomise_weights(ref: AuthorsRSRefSeg2, seed: int = 0) -> None:
    """Make every part of the reference act: every weight perturbed.

    peft initialises ``lora_B`` to zero, Hiera its position embeddings to
    zero, norms to the identity and BN statistics to (0, 1): a misplaced
    adapter, norm or layer would then not change the output. Noise shrinks
    with the fan-in so that deep towers stay finite; norm and BN scales are
    drawn in [0.5, 1.5]. SigLIP's scale and bias are set to 10 and -2 so that
    the dense prompt is not saturated.
    """
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if p.dim() == 1 and name.endswith('weight'):  # LN / BN scales
                p.uniform_(0.5, 1.5)
            else:
                fan_in = p[0].numel() if p.dim() > 1 else 32
                p.add_(
                    torch.randn_like(p) * 0.2 *
                    min(1., math.sqrt(32 / fan_in)))
        for name, b in ref.named_buffers():
            if name.endswith('running_mean'):
                b.normal_(0, 0.1)
            elif name.endswith('running_var'):
                b.uniform_(0.5, 1.5)
        ref.clip_text_encoder.logit_scale.fill_(math.log(10.))
        ref.clip_text_encoder.logit_bias.fill_(-2.)


def save_authors_checkpoint(ref: AuthorsRSRefSeg2, path: str) -> None:
    """Write ``ref`` in the authors' released format.

    ``torch.save`` pickle of ``{'state_dict': OrderedDict}`` with every
    floating-point tensor (weights, buffers, BN statistics) in bfloat16,
    integer tensors (``num_batches_tracked``) unchanged, as the files on
    Hugging Face ``KyanChen/RSRefSeg2``.

    Args:
        ref (AuthorsRSRefSeg2): The model to write.
        path (str): Destination file.
    """
    state = OrderedDict((k, v.detach().to(torch.bfloat16) if v.
                         is_floating_point() else v.detach().clone())
                        for k, v in ref.state_dict().items())
    torch.save({'state_dict': state}, path)


def load_authors_checkpoint(path: str) -> 'OrderedDict[str, Tensor]':
    """Read a released-format file back as a float32 state dict.

    Args:
        path (str): A file :func:`save_authors_checkpoint` (or the authors)
            wrote.

    Returns:
        OrderedDict[str, Tensor]: bfloat16 tensors widened to float32.

    Raises:
        KeyError: If the file holds no ``state_dict``.
    """
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    if 'state_dict' not in ckpt:
        raise KeyError(f'{path} has no "state_dict" entry (keys: '
                       f'{sorted(ckpt)[:5]})')
    return OrderedDict((k, v.float() if v.is_floating_point() else v)
                       for k, v in ckpt['state_dict'].items())
