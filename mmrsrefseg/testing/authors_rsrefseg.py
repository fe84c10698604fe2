# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""The RSRefSeg authors' composition, rebuilt for parity tests and benchmarks.

A re-implementation (not a copy) of the forward graph of the authors' public
code (KyanChen/RSRefSeg, ``rsris/models/models.py``, ``RefSegEncoderDecoder``
with ``RefSegSamVisionEncoder``, ``RefSegSiglipVisionModel``,
``RefSegSiglipTextModel``, ``RefSegSamPromptEncoder``,
``RefSegSamMaskDecoder``; LoRA as in ``configs_RSRefSeg/RSRefSeg-b.py``) from
the same libraries the authors use: transformers' ``SamModel`` and
``SiglipModel``, peft's ``get_peft_model`` and mmcv's ``ConvModule``. Module
names equal theirs, so :meth:`AuthorsRSRefSeg.state_dict` has the key layout
of a checkpoint trained with their code.

What it keeps of theirs on purpose, including what mmrsrefseg corrects:
texts tokenised with ``padding=True`` (so in a batch of mixed-length
expressions the sentence feature of a short one is a padding token's and the
local mean includes padding, as in their code), SigLIP's input normalised
then resized bilinearly, the prompter with SyncBN (``norm_cfg``; BN on one
process), SAM's vision encoder, prompt encoder and mask decoder from HF.
Differences that cannot matter numerically: weights are random (built from
configs, nothing downloaded); ``torchvision.transforms.functional.normalize``
is written out (:mod:`.authors_inputs`; torchvision is not installable here).
"""
import copy
import math
import os.path as osp
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .authors_inputs import (SAM_MEAN, SAM_STD, HFWrapper, config_tokenizer,
                             normalize, siglip_inputs)

# ``configs_RSRefSeg/RSRefSeg-b.py`` lora_cfg.
AUTHORS_LORA_CFG = dict(
    backbone=dict(
        r=16,
        lora_alpha=16,
        lora_dropout=0.1,
        target_modules=[
            'qkv', 'proj', 'lin1', 'lin2', 'neck.conv1', 'neck.conv2'
        ]),
    clip_vision_encoder=dict(
        r=16,
        lora_alpha=16,
        lora_dropout=0.1,
        target_modules=['k_proj', 'v_proj', 'q_proj', 'out_proj']),
    clip_text_encoder=dict(
        r=16,
        lora_alpha=16,
        lora_dropout=0.1,
        target_modules=r'(^model\.encoder\.layers\..*\.self_attn\.'
        r'(k_proj|v_proj|q_proj|out_proj))|(^model\.head)'))


class AuthorsRSRefSeg(nn.Module):
    """The authors' RSRefSeg forward, from transformers + peft + mmcv.

    Args:
        sam_config (transformers.SamConfig): SAM architecture.
        siglip_config (transformers.SiglipConfig): SigLIP architecture.
        tokenizer: A SigLIP tokenizer (called with ``padding=True,
            truncation=True, max_length=128`` as theirs).
        lora_cfg (dict, optional): Per-part ``LoraConfig`` kwargs. Defaults
            to :data:`AUTHORS_LORA_CFG`; a part left out is frozen.
        down_spatial_times (int): Stride-2 prompter blocks. Defaults to 2.
        with_dense_feat (bool): Mask prompt from Z_g. Defaults to True.
        norm_cfg (dict): Prompter norm. Defaults to BN (their SyncBN on one
            process).
    """

    def __init__(self,
                 sam_config,
                 siglip_config,
                 tokenizer,
                 lora_cfg: Optional[dict] = None,
                 down_spatial_times: int = 2,
                 with_dense_feat: bool = True,
                 norm_cfg: dict = dict(type='BN', requires_grad=True)):
        super().__init__()
        from mmcv.cnn import ConvModule
        from peft import LoraConfig, get_peft_model
        from transformers import SamModel, SiglipModel
        sam = SamModel(sam_config)
        siglip = SiglipModel(siglip_config)
        self.tokenizer = tokenizer
        self.clip_image_size = int(siglip_config.vision_config.image_size)
        self.backbone = HFWrapper(
            sam.vision_encoder,
            sam.vision_encoder.config,
            shared_image_embedding=sam.shared_image_embedding)
        self.clip_vision_encoder = HFWrapper(siglip.vision_model,
                                             siglip.vision_model.config)
        self.clip_text_encoder = HFWrapper(
            siglip.text_model,
            siglip.text_model.config,
            logit_scale=siglip.logit_scale,
            logit_bias=siglip.logit_bias)
        self.sam_prompt_encoder = HFWrapper(sam.prompt_encoder,
                                            sam_config.prompt_encoder_config)
        self.sam_mask_decoder = HFWrapper(sam.mask_decoder,
                                          sam_config.mask_decoder_config)
        self.down_spatial_times = down_spatial_times
        self.with_dense_feat = with_dense_feat
        from mmseg.models.losses import CrossEntropyLoss
        self._loss_decode = CrossEntropyLoss(use_sigmoid=True, loss_weight=5.0)
        hidden = self.sam_prompt_encoder.model.hidden_size
        width = self.clip_text_encoder.hf_config.hidden_size
        act = dict(type='GELU')
        self.prompter_down_channel = ConvModule(
            width * 3, hidden, 1, norm_cfg=norm_cfg, act_cfg=act)
        self.prompter_down_spatial = nn.Sequential(
            *[
                ConvModule(
                    hidden,
                    hidden,
                    3,
                    stride=2,
                    padding=1,
                    norm_cfg=norm_cfg,
                    act_cfg=act) for _ in range(down_spatial_times)
            ], ConvModule(hidden, hidden, 1, norm_cfg=None, act_cfg=None))
        lora_cfg = AUTHORS_LORA_CFG if lora_cfg is None else lora_cfg
        for name in ('backbone', 'clip_vision_encoder', 'clip_text_encoder'):
            if name in lora_cfg:
                config = LoraConfig(**copy.deepcopy(lora_cfg[name]))
                setattr(self, name,
                        get_peft_model(getattr(self, name), config))
            else:
                getattr(self, name).requires_grad_(False)

    def image_positional_embeddings(self, size: int) -> Tensor:
        """SAM's dense positional encoding (1, C, size, size)."""
        shared = self.backbone.shared_image_embedding
        grid = torch.ones((size, size),
                          device=shared.positional_embedding.device,
                          dtype=shared.positional_embedding.dtype)
        y = (grid.cumsum(dim=0) - 0.5) / size
        x = (grid.cumsum(dim=1) - 0.5) / size
        pe = shared(torch.stack([x, y], dim=-1))
        return pe.permute(2, 0, 1).unsqueeze(0)

    def forward(self, inputs: Tensor, texts: List[str]) -> Dict[str, Tensor]:
        """The authors' ``extract_feat``.

        Args:
            inputs (Tensor): (B, 3, S, S) RGB in [0, 1] (their data
                preprocessor divides by 255), S = SAM's input size.
            texts (list[str]): B referring expressions.

        Returns:
            dict: ``masks`` (B, 1, 4h, 4w) low-resolution mask logits,
            ``global_logits`` (B, h', w') Z_g.
        """
        sam_feat = self.backbone(normalize(inputs, SAM_MEAN,
                                           SAM_STD))['last_hidden_state']
        x_clip, text_dict = siglip_inputs(inputs, texts, self.clip_image_size,
                                          self.tokenizer)
        visual = self.clip_vision_encoder(x_clip)['last_hidden_state']
        side = int(math.sqrt(visual.shape[1]))
        visual = visual.transpose(1, 2).reshape(visual.shape[0], -1, side,
                                                side)
        text_out = self.clip_text_encoder(**text_dict)
        pooled, tokens = text_out['pooler_output'], text_out[
            'last_hidden_state']
        v_n = visual / visual.norm(p=2, dim=1, keepdim=True)
        t_n = tokens / tokens.norm(p=2, dim=2, keepdim=True)
        g_n = pooled / pooled.norm(p=2, dim=1, keepdim=True)
        scale = self.clip_text_encoder.logit_scale.exp()
        bias = self.clip_text_encoder.logit_bias
        local = torch.sigmoid(
            torch.einsum('bchw,bdc->bdhw', v_n, t_n) * scale + bias)
        local_feat = torch.einsum('bdhw,bchw->bchw', local,
                                  visual) / local.size(1)
        local_feat = (visual + local_feat) / 2
        global_logit = torch.einsum('bchw,bc->bhw', v_n, g_n) * scale + bias
        global_feat = torch.sigmoid(global_logit)[:, None] * visual
        feat = torch.cat([local_feat, global_feat, visual], dim=1)
        feat = self.prompter_down_channel(feat)
        feat = feat + self.image_positional_embeddings(feat.size(2))
        feat = self.prompter_down_spatial(feat)
        b = inputs.size(0)
        image_pe = self.image_positional_embeddings(sam_feat.size(2)).repeat(
            b, 1, 1, 1)
        masks = None
        if self.with_dense_feat:
            masks = F.interpolate(
                global_logit.unsqueeze(1),
                size=(image_pe.size(2) * 4, image_pe.size(3) * 4),
                mode='bilinear',
                align_corners=False)
        _, dense = self.sam_prompt_encoder(
            input_points=None,
            input_labels=None,
            input_boxes=None,
            input_masks=masks)
        sparse = feat.flatten(2).transpose(1, 2).unsqueeze(1)
        low_res_masks, _ = self.sam_mask_decoder(
            image_embeddings=sam_feat,
            image_positional_embeddings=image_pe,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False)
        return dict(masks=low_res_masks.squeeze(1), global_logits=global_logit)

    def loss(self, inputs: Tensor, texts: List[str], gt: Tensor) -> Tensor:
        """The authors' training loss (their ``PseudoSegHead``).

        Mask logits upsampled bilinearly to the label size, mmseg's
        ``CrossEntropyLoss(use_sigmoid=True, loss_weight=5.0)`` with
        ``ignore_index=255``.

        Args:
            inputs (Tensor): (B, 3, S, S) RGB in [0, 1].
            texts (list[str]): B referring expressions.
            gt (Tensor): (B, H, W) int64 labels in {0, 1, 255}.

        Returns:
            Tensor: The scalar loss.
        """
        logits = F.interpolate(
            self(inputs, texts)['masks'],
            size=gt.shape[-2:],
            mode='bilinear',
            align_corners=False)
        return self._loss_decode(logits, gt, ignore_index=255)


def sam_config_from_head(head: dict):
    """transformers ``SamConfig`` equal to an mmrsrefseg ``SAMPromptHead``.

    Args:
        head (dict): ``model.decode_head`` of an mmrsrefseg config.

    Returns:
        transformers.SamConfig
    """
    from transformers import SamConfig

    from mmrsrefseg.models.heads.sam_prompt_head import sam_architecture
    enc, dec = sam_architecture(
        head.get('sam_type', 'vit_b'), head.get('encoder_cfg'),
        head.get('decoder_cfg'))
    size = head.get('image_size', 1024)
    prompt = head.get('prompt_channels', 256)
    return SamConfig(
        vision_config=dict(
            hidden_size=enc['embed_dim'],
            output_channels=prompt,
            num_hidden_layers=enc['depth'],
            num_attention_heads=enc['num_heads'],
            image_size=size,
            patch_size=enc['patch_size'],
            window_size=enc['window_size'],
            global_attn_indexes=list(enc['global_attn_indexes']),
            num_pos_feats=prompt // 2),
        prompt_encoder_config=dict(
            hidden_size=prompt, image_size=size, patch_size=enc['patch_size']),
        mask_decoder_config=dict(
            hidden_size=prompt,
            mlp_dim=dec['mlp_dim'],
            num_hidden_layers=dec['transformer_depth'],
            num_attention_heads=dec['num_heads'],
            num_multimask_outputs=dec['num_multimask_outputs'],
            iou_head_depth=dec['iou_head_depth'],
            iou_head_hidden_dim=dec['iou_head_hidden_dim']))


def build_authors_from_config(model_cfg: dict,
                              tokenizer=None,
                              lora: bool = True) -> AuthorsRSRefSeg:
    """The authors' composition with the shapes of an mmrsrefseg config.

    Args:
        model_cfg (dict): ``model`` of a SigLIP RSRefSeg config.
        tokenizer: SigLIP tokenizer; None loads the config's
            ``backbone.tokenizer`` / ``backbone.pretrained`` on first use
            (only needed for :meth:`AuthorsRSRefSeg.forward`).
        lora (bool): Apply the authors' LoRA (with
            ``model.finetune_cfg.lora``'s rank, alpha, dropout). Defaults to
            True.

    Returns:
        AuthorsRSRefSeg

    Raises:
        ValueError: If the config's backbone is not SigLIP.
    """
    from transformers import SiglipConfig
    backbone = model_cfg['backbone']
    if backbone.get('model_type') != 'siglip':
        raise ValueError('The authors\' composition is SigLIP-based; got '
                         f"model_type={backbone.get('model_type')!r}")
    if tokenizer is None:
        tokenizer = config_tokenizer(backbone)
    lora_cfg = {}
    if lora:
        lcfg = (model_cfg.get('finetune_cfg') or {}).get('lora') or {}
        lora_cfg = copy.deepcopy(AUTHORS_LORA_CFG)
        for part in lora_cfg.values():
            part.update(
                r=lcfg.get('rank', 16),
                lora_alpha=lcfg.get('alpha', 16),
                lora_dropout=lcfg.get('dropout', 0.1))
    neck = model_cfg['neck']
    return AuthorsRSRefSeg(
        sam_config_from_head(model_cfg['decode_head']),
        SiglipConfig(**copy.deepcopy(backbone['config'])),
        tokenizer,
        lora_cfg=lora_cfg,
        down_spatial_times=neck.get('num_downsample', 2),
        with_dense_feat=neck.get('use_dense_prompt', True))


def tiny_siglip_rsrefseg_cfg(tokenizer_dir: str, vocab_size: int) -> dict:
    """An RSRefSeg model config (SigLIP + SAM) small enough for CPU tests.

    Args:
        tokenizer_dir (str): A SigLIP tokenizer directory.
        vocab_size (int): Text vocabulary size (``len(tokenizer)``).

    Returns:
        dict: ``model`` config: 128x128 SAM input, 7x7 SigLIP grid, prompter
        with BN and two stride-2 blocks, the paper configs' fine-tuning
        policy (the authors' LoRA targets) at rank 4.
    """
    from mmengine.config import Config
    paper = Config.fromfile(
        osp.join(
            osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
            'configs', '_base_', 'models',
            'rsrefseg_siglip-so400m_sam-vitb.py')).model.finetune_cfg
    finetune_cfg = paper.to_dict()
    finetune_cfg['lora'].update(rank=4, alpha=8, dropout=0.1)
    return dict(
        type='RSRefSeg',
        data_preprocessor=dict(
            type='SegDataPreProcessor',
            mean=None,
            std=None,
            bgr_to_rgb=True,
            size=(128, 128)),
        backbone=dict(
            type='CLIPBackbone',
            model_type='siglip',
            tokenizer=tokenizer_dir,
            config=dict(
                text_config=dict(
                    vocab_size=vocab_size,
                    hidden_size=32,
                    intermediate_size=64,
                    num_hidden_layers=2,
                    num_attention_heads=4,
                    max_position_embeddings=32),
                vision_config=dict(
                    hidden_size=32,
                    intermediate_size=64,
                    num_hidden_layers=2,
                    num_attention_heads=4,
                    image_size=56,
                    patch_size=8))),
        neck=dict(
            type='TextFilterNeck',
            in_channels=32,
            prompt_channels=32,
            num_downsample=2,
            mask_prompt_size=(32, 32),
            norm_cfg=dict(type='BN')),
        decode_head=dict(
            type='SAMPromptHead',
            sam_type=None,
            encoder_cfg=dict(
                embed_dim=32,
                depth=2,
                num_heads=2,
                global_attn_indexes=(1, ),
                window_size=4),
            image_size=128,
            prompt_channels=32,
            decoder_cfg=dict(
                transformer_depth=2,
                mlp_dim=64,
                num_heads=2,
                iou_head_hidden_dim=32)),
        finetune_cfg=finetune_cfg)


def randomise_weights(ref: 'AuthorsRSRefSeg',
                      seed: int = 0,
                      logit_scale: float = 10.,
                      logit_bias: float = -2.) -> None:
    """Make every part of the reference act: every weight perturbed.

    peft initialises ``lora_B`` to zero, BN to the identity and HF SAM some
    weights at std 1e-10, which would hide a misplaced adapter, norm or
    layer from a parity test (the mask logits would be ~1e-5). The noise
    shrinks with the fan-in so that deep towers stay finite.

    Args:
        ref (AuthorsRSRefSeg): Modified in place.
        seed (int): Random seed. Defaults to 0.
        logit_scale (float): SigLIP's similarity scale ``exp(t)``. Defaults
            to 10 (with ``logit_bias`` -2 the activations are not
            saturated); released SigLIP models have scales of about 100 and
            biases of about -10 and below.
        logit_bias (float): SigLIP's similarity bias. Defaults to -2.
    """
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name.endswith('.bn.weight'):
                p.uniform_(0.5, 1.5)
            else:  # HF SAM initialises at std 1e-10 .. 0.02
                fan_in = p[0].numel() if p.dim() > 1 else 32
                std = 0.2 * min(1., math.sqrt(32 / fan_in))
                p.add_(torch.randn_like(p) * std)
        for name, b in ref.named_buffers():
            if name.endswith('running_mean'):
                b.normal_(0, 0.1)
            elif name.endswith('running_var'):
                b.uniform_(0.5, 1.5)
        ref.clip_text_encoder.logit_scale.fill_(math.log(logit_scale))
        ref.clip_text_encoder.logit_bias.fill_(logit_bias)
