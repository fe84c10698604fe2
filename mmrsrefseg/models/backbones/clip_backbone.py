# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""CLIP / SigLIP image-and-text encoder for RSRefSeg."""
import importlib.util
import os.path as osp
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor

from mmrsrefseg.utils.checkpoint import read_hf_pretrained, to_module_keys

# Image normalisation of the two CLIP families (their HF image processors).
_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_SIGLIP_MEAN = (0.5, 0.5, 0.5)
_SIGLIP_STD = (0.5, 0.5, 0.5)


def _missing_tokenizer_backends() -> str:
    """Name the tokenizer backend packages that cannot be imported."""
    missing = []
    for package, module in (('sentencepiece', 'sentencepiece'),
                            ('protobuf', 'google.protobuf')):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # parent package ('google') missing
            found = False
        if not found:
            missing.append(f'`{package}`')
    if not missing:
        return 'a tokenizer backend is'
    return ' and '.join(missing) + (' is' if len(missing) == 1 else ' are')


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    """Raise ValueError naming ``name`` if ``value`` is not in ``choices``."""
    if value not in choices:
        raise ValueError(f'{name} must be one of {tuple(choices)}, got '
                         f'{value!r}')


@MODELS.register_module()
class CLIPBackbone(BaseModule):
    """CLIP or SigLIP (HF transformers) encoding images and expressions.

    RSRefSeg stages 2-3 (arXiv:2501.06809, Sec. III-B): dense patch features
    ``V`` of the image, per-token ("local") features ``L`` and the pooled
    ("global") sentence feature ``g`` of the referring expression, all in the
    joint image-text embedding space so that cosine similarities between them
    are meaningful.

    The model is built from ``config`` in ``__init__`` (no download, random
    weights); the weights of ``pretrained`` are loaded in :meth:`init_weights`,
    strictly. The tokenizer is read lazily from ``tokenizer`` (defaults to
    ``pretrained``) on the first forward, so that building a config never
    touches the disk or the network.

    Family specifics:

    - ``'clip'`` (OpenAI CLIP, :class:`transformers.CLIPModel`): patch tokens
      go through ``post_layernorm`` and ``visual_projection``, text tokens
      through ``text_projection`` (the same layers as the pooled CLS / EOS
      features, so that the CLS / EOS rows would equal
      ``get_image_features`` / ``get_text_features``). Expressions are padded
      to the longest in the batch and the attention mask is passed, so padding
      never changes a sample's features. ``logit_scale`` is CLIP's
      ``exp(logit_scale)``; CLIP has no bias (``logit_bias`` is None; the neck
      supplies one). Only ``text_feature='projected'`` is meaningful (the
      token and patch widths differ before projection).
    - ``'siglip'`` (:class:`transformers.SiglipModel`): patch tokens are the
      vision tower's ``last_hidden_state`` (after ``post_layernorm``; the
      attention-pooling head is unused). ``logit_scale`` /
      ``logit_bias`` are SigLIP's.

    SigLIP options; each default is the authors' public code
    (KyanChen/RSRefSeg, ``rsris/models/models.py``,
    ``RefSegEncoderDecoder.extract_feat``), which produced the published
    numbers, and each alternative is one switch away:

    - ``text_feature`` -- local token features ``L``:
      ``'last_hidden_state'`` (authors: the text tower's final-layer-norm
      output) or ``'projected'`` (the text ``head`` applied to every token,
      so that the tokens live in the space of the pooled feature).
    - ``clip_resize`` -- SAM-size image to the CLIP resolution:
      ``'bilinear'`` (authors: normalise, then ``F.interpolate`` bilinear
      without antialiasing) or ``'bicubic_antialias'`` (resize first,
      bicubic with antialiasing, like the HF image processors' PIL resize).

    Sentence feature ``g``: the authors tokenise with ``padding=True`` at
    batch 1 per GPU, so ``g`` is ``head`` of the last real token (the EOS
    where the tokenizer appends one). This is generalised to batches with the
    attention mask and per-sample pooling at each expression's last real
    token, so that every sample of a batch gets its batch-1 output (the
    authors' code pools a padding token for the shorter expressions of a
    batch).

    In both families ``text_mask`` marks the real tokens (special tokens
    included); padding positions must be ignored by consumers.

    Args:
        model_type (str): ``'clip'`` or ``'siglip'``.
        config (dict): Keyword arguments of ``CLIPConfig`` / ``SiglipConfig``
            (``text_config`` and ``vision_config`` dicts).
        pretrained (str, optional): A local ``save_pretrained`` directory or a
            hub id, loaded in :meth:`init_weights`. Defaults to None.
        tokenizer (str, optional): Directory or hub id of the tokenizer.
            Defaults to ``pretrained``.
        image_mean (Sequence[float], optional): RGB mean on the 0-1 scale.
            Defaults to the family's.
        image_std (Sequence[float], optional): RGB std on the 0-1 scale.
            Defaults to the family's.
        max_length (int, optional): Token limit. Defaults to the text tower's
            ``max_position_embeddings`` (77 for CLIP, 64 for SigLIP). Longer
            expressions are truncated and counted in :attr:`num_truncated`,
            with a logged warning.
        text_feature (str, optional): ``'last_hidden_state'`` or
            ``'projected'`` (see above). Defaults to None: the authors'
            ``'last_hidden_state'`` for SigLIP, ``'projected'`` for CLIP.
        clip_resize (str): ``'bilinear'`` or ``'bicubic_antialias'``.
            Defaults to ``'bilinear'``.
        with_cp (bool): Activation checkpointing of every encoder layer of
            both towers (recomputed in backward; saves memory when training
            LoRA). Defaults to False.
        init_cfg (dict, optional): Unused; weights come from ``pretrained``.

    Raises:
        ValueError: On an unknown ``model_type`` / option, or an option that
            the family cannot use.
    """

    def __init__(self,
                 model_type: str,
                 config: dict,
                 pretrained: Optional[str] = None,
                 tokenizer: Optional[str] = None,
                 image_mean: Optional[Sequence[float]] = None,
                 image_std: Optional[Sequence[float]] = None,
                 max_length: Optional[int] = None,
                 text_feature: Optional[str] = None,
                 clip_resize: str = 'bilinear',
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        from transformers import (CLIPConfig, CLIPModel, SiglipConfig,
                                  SiglipModel)
        if model_type == 'clip':
            self.model = CLIPModel(CLIPConfig(**config))
            mean, std = _CLIP_MEAN, _CLIP_STD
        elif model_type == 'siglip':
            self.model = SiglipModel(SiglipConfig(**config))
            mean, std = _SIGLIP_MEAN, _SIGLIP_STD
        else:
            raise ValueError(
                f"model_type must be 'clip' or 'siglip', got {model_type!r}")
        self.model_type = model_type
        if text_feature is None:
            text_feature = ('last_hidden_state'
                            if model_type == 'siglip' else 'projected')
        _check_choice('text_feature', text_feature,
                      ('last_hidden_state', 'projected'))
        _check_choice('clip_resize', clip_resize,
                      ('bilinear', 'bicubic_antialias'))
        if model_type == 'clip' and text_feature != 'projected':
            raise ValueError(
                "CLIP needs text_feature='projected' (its token features "
                'live in another space before text_projection); got '
                f'{text_feature!r}')
        self.text_feature = text_feature
        self.clip_resize = clip_resize
        self.with_cp = with_cp
        if with_cp:
            self.model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs=dict(use_reentrant=False))
        self.pretrained = pretrained
        self.tokenizer_path = tokenizer if tokenizer is not None \
            else pretrained
        vision_cfg = self.model.config.vision_config
        text_cfg = self.model.config.text_config
        self.image_size = int(vision_cfg.image_size)
        self.patch_size = int(vision_cfg.patch_size)
        self.max_length = int(max_length or text_cfg.max_position_embeddings)
        if self.max_length > text_cfg.max_position_embeddings:
            raise ValueError(
                f'max_length={self.max_length} exceeds the text tower limit '
                f'{text_cfg.max_position_embeddings}')
        self.register_buffer(
            'image_mean',
            torch.tensor(image_mean or mean).view(1, 3, 1, 1) * 255.,
            persistent=False)
        self.register_buffer(
            'image_std',
            torch.tensor(image_std or std).view(1, 3, 1, 1) * 255.,
            persistent=False)
        self._tokenizer = None
        self.num_truncated = 0

    @property
    def embed_dims(self) -> int:
        """Width ``C`` of the joint embedding space."""
        if self.model_type == 'clip':
            return int(self.model.config.projection_dim)
        return int(self.model.config.text_config.projection_size)

    @property
    def feature_size(self):
        """Spatial size ``(h, w)`` of the dense patch features."""
        n = self.image_size // self.patch_size
        return (n, n)

    @property
    def pretrained_source(self) -> Optional[str]:
        """Where :meth:`init_weights` reads the weights (None: random)."""
        return self.pretrained

    def read_pretrained(self) -> Dict[str, Tensor]:
        """The weights of ``pretrained`` under this module's key names.

        Loaded with transformers' ``from_pretrained`` (HF ``save_pretrained``
        directory or hub id), which must find every weight of the
        directory's architecture; the result must then fit this module
        exactly (LoRA-wrapped layers map ``<name>.weight`` to
        ``<name>.base_layer.weight``).

        Returns:
            dict[str, Tensor]: ``model.*`` keys, every parameter and
            persistent buffer except the LoRA matrices.

        Raises:
            ValueError: If ``pretrained`` is None, or its ``config.json`` is
                missing, invalid or of another ``model_type``.
            StateDictError: On missing, unexpected or mis-shaped weights
                (named, with the directory).
        """
        if self.pretrained is None:
            raise ValueError('CLIPBackbone has no `pretrained` weights')
        from transformers import CLIPModel, SiglipModel
        cls = CLIPModel if self.model_type == 'clip' else SiglipModel
        hf = read_hf_pretrained(cls, self.pretrained, self.model_type)
        state = to_module_keys(self.model, hf.state_dict(), self.pretrained)
        return {f'model.{k}': v for k, v in state.items()}

    def init_weights(self):
        """Load ``pretrained`` strictly (see :meth:`read_pretrained`).

        Raises:
            ValueError: On a bad ``pretrained`` directory.
            StateDictError: On missing, unexpected or mis-shaped weights.
        """
        if self.pretrained is None:
            super().init_weights()
            return
        self.load_state_dict(self.read_pretrained(), strict=False)
        print_log(
            f'CLIPBackbone: loaded {self.model_type} weights from '
            f'{self.pretrained}',
            logger='current')
        self._is_init = True

    # ------------------------------------------------------------------ text
    @property
    def tokenizer(self):
        """The tokenizer of ``tokenizer``/``pretrained``, validated.

        Raises:
            ImportError: If a tokenizer backend package (``sentencepiece``,
                ``protobuf`` for SigLIP) is missing; the message names it.
            ValueError: If no tokenizer location is configured, or the
                tokenizer is obviously wrong (transformers 5 returns a
                2-entry vocabulary for an unreachable hub id instead of
                failing) or produces ids beyond the model's vocabulary.
        """
        if self._tokenizer is None:
            if self.tokenizer_path is None:
                raise ValueError(
                    'CLIPBackbone needs `tokenizer` or `pretrained` (a '
                    'directory holding the tokenizer files) to encode '
                    'referring expressions.')
            from transformers import AutoTokenizer
            try:
                tok = AutoTokenizer.from_pretrained(self.tokenizer_path)
            except ImportError as e:
                raise ImportError(
                    f'Cannot load the tokenizer of {self.tokenizer_path}: '
                    f'{_missing_tokenizer_backends()} needed (SigLIP\'s '
                    'SentencePiece tokenizer needs `sentencepiece` and '
                    '`protobuf`; both are in mmrsrefseg\'s '
                    'requirements/runtime.txt: pip install sentencepiece '
                    f'protobuf). Original error: {e}') from e
            vocab = self.model.config.text_config.vocab_size
            if len(tok) < 16 or len(tok) > vocab:
                where = 'a local directory' if osp.isdir(
                    self.tokenizer_path) else 'a hub id (offline?)'
                raise ValueError(
                    f'Tokenizer from {self.tokenizer_path} ({where}) has '
                    f'{len(tok)} entries, but the text tower has a '
                    f'vocabulary of {vocab}. Point `tokenizer` at the '
                    'directory holding vocab.json/merges.txt (CLIP) or '
                    'spiece.model (SigLIP) of this model.')
            self._tokenizer = tok
        return self._tokenizer

    # Python string work: keep it out of torch.compile graphs (dynamo fails
    # inside the HF tokenizer with torch 2.13: 'dictionary changed size').
    @torch.compiler.disable
    def tokenize(self, texts: Sequence[str], device=None) -> Dict[str, Tensor]:
        """Tokenise referring expressions the way the text tower expects.

        Args:
            texts (Sequence[str]): B non-empty expressions.
            device (torch.device, optional): Device of the returned tensors.

        Returns:
            dict: ``input_ids`` (B, T) int64 and ``attention_mask`` (B, T)
            int64 (1 for real tokens, right padding); T is the longest
            expression of the batch.

        Raises:
            ValueError: If an expression is empty or not a string.
        """
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                raise ValueError(
                    f'Referring expression {i} of the batch is empty or not '
                    f'a string: {t!r}')
        texts = list(texts)
        tok = self.tokenizer
        # One pass, truncated at max_length + 1: a sequence that reaches
        # max_length + 1 tokens was too long. Only then (rare) is the batch
        # tokenised again at max_length; otherwise it is just padded.
        enc = tok(texts, truncation=True, max_length=self.max_length + 1)
        over = sum(len(ids) > self.max_length for ids in enc['input_ids'])
        if over:
            self.num_truncated += over
            print_log(
                f'{over} referring expression(s) longer than '
                f'{self.max_length} tokens truncated ({self.num_truncated} '
                'so far)',
                logger='current',
                level=30)
            enc = tok(texts, truncation=True, max_length=self.max_length)
        # SigLIP2's Gemma tokenizer lists only input_ids as model inputs,
        # so the attention mask must be asked for.
        enc = tok.pad(
            enc,
            padding='longest',
            return_attention_mask=True,
            return_tensors='pt')
        return {
            'input_ids': enc['input_ids'].to(device),
            'attention_mask': enc['attention_mask'].to(device)
        }

    def encode_text(self, input_ids: Tensor,
                    attention_mask: Tensor) -> Dict[str, Tensor]:
        """Encode token ids into local and global text features.

        Args:
            input_ids (Tensor): (B, T) token ids, right-padded.
            attention_mask (Tensor): (B, T), 1 for real tokens.

        Returns:
            dict: ``text_feats`` (B, T, C) per-token features (see
            ``text_feature``), ``text_mask`` (B, T) bool, ``text_embeds``
            (B, C) pooled sentence feature (each sample's last real token).
        """
        text_model = self.model.text_model
        if self.model_type == 'clip':
            out = text_model(
                input_ids=input_ids, attention_mask=attention_mask)
            proj = self.model.text_projection
            return {
                'text_feats': proj(out.last_hidden_state),
                'text_mask': attention_mask.bool(),
                'text_embeds': proj(out.pooler_output)
            }
        # The authors' batch-1 semantics for any batch: real tokens never
        # attend to padding, and g is the head of each sample's last real
        # token (the EOS where the tokenizer appends one).
        out = text_model(input_ids=input_ids, attention_mask=attention_mask)
        last = attention_mask.sum(1) - 1
        hidden = out.last_hidden_state
        pooled = text_model.head(hidden[torch.arange(hidden.shape[0]), last])
        tokens = out.last_hidden_state
        if self.text_feature == 'projected':
            tokens = text_model.head(tokens)
        return {
            'text_feats': tokens,
            'text_mask': attention_mask.bool(),
            'text_embeds': pooled
        }

    # ----------------------------------------------------------------- image
    def preprocess(self, images: Tensor) -> Tensor:
        """Resize to the CLIP resolution and normalise.

        Args:
            images (Tensor): (B, 3, H, W) RGB, 0-255.

        Returns:
            Tensor: (B, 3, S, S) normalised pixels, S = ``image_size``
            (``clip_resize='bilinear'``: normalised, then bilinear without
            antialiasing, as the authors; ``'bicubic_antialias'``: bicubic
            with antialiasing, then normalised).
        """
        size = (self.image_size, self.image_size)
        if not images.is_floating_point():
            images = images.float()
        if self.clip_resize == 'bilinear':
            images = (images - self.image_mean) / self.image_std
            if images.shape[-2:] != size:
                images = F.interpolate(
                    images, size=size, mode='bilinear', align_corners=False)
            return images
        if images.shape[-2:] != size:
            images = F.interpolate(
                images,
                size=size,
                mode='bicubic',
                align_corners=False,
                antialias=True)
        return (images - self.image_mean) / self.image_std

    def encode_image(self, pixel_values: Tensor) -> Dict[str, Tensor]:
        """Encode normalised pixels into dense and pooled image features.

        Args:
            pixel_values (Tensor): (B, 3, S, S) output of :meth:`preprocess`.

        Returns:
            dict: ``visual_feats`` (B, C, h, w) dense patch features in the
            joint space (CLIP: ``post_layernorm`` and ``visual_projection``
            applied to every patch token, as to the CLS token in
            ``get_image_features``).
        """
        vision = self.model.vision_model
        out = vision(pixel_values=pixel_values)
        h, w = self.feature_size
        if self.model_type == 'clip':
            patches = self.model.visual_projection(
                vision.post_layernorm(out.last_hidden_state[:, 1:]))
        else:
            patches = out.last_hidden_state
        b, n, c = patches.shape
        if n != h * w:
            raise ValueError(f'Expected {h * w} patch tokens, got {n}')
        return {'visual_feats': patches.transpose(1, 2).reshape(b, c, h, w)}

    def logit_scale_bias(self):
        """Return ``(scale, bias)``: the similarity temperature and offset.

        ``scale`` is ``exp(logit_scale)`` (a 0-d tensor); ``bias`` is SigLIP's
        ``logit_bias`` or None for CLIP.
        """
        scale = self.model.logit_scale.exp().reshape(())
        bias = None
        if self.model_type == 'siglip':
            bias = self.model.logit_bias.reshape(())
        return scale, bias

    def forward(self, images: Tensor, texts: List[str]) -> Dict[str, Tensor]:
        """Encode a batch of images and their referring expressions.

        Args:
            images (Tensor): (B, 3, H, W) RGB, 0-255 (any H, W; resized to the
                CLIP resolution inside).
            texts (list[str]): B referring expressions.

        Returns:
            dict: ``visual_feats`` (B, C, h, w), ``text_feats`` (B, T, C),
            ``text_mask`` (B, T) bool, ``text_embeds`` (B, C),
            ``logit_scale`` 0-d tensor, ``logit_bias`` 0-d tensor or None.

        Raises:
            ValueError: If ``len(texts) != B`` or an expression is empty.
        """
        if len(texts) != images.shape[0]:
            raise ValueError(f'{images.shape[0]} images but {len(texts)} '
                             'referring expressions')
        feats = self.encode_image(self.preprocess(images))
        feats.update(self.encode_text(**self.tokenize(texts, images.device)))
        feats['logit_scale'], feats['logit_bias'] = self.logit_scale_bias()
        return feats
