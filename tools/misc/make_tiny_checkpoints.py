# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Write tiny random CLIP/SigLIP and SAM checkpoints in the real formats.

The architecture comes from a config (``model.backbone.config`` and
``model.decode_head``), so the checkpoints always match it:

- ``<out>/<clip dir>``: ``CLIPModel`` / ``SiglipModel`` saved with
  ``save_pretrained`` plus the real OpenAI CLIP BPE tokenizer
  (``vocab.json`` with 49,408 entries and ``merges.txt``), rebuilt from the
  vocabulary file that mmsegmentation ships
  (``mmseg/utils/bpe_simple_vocab_16e6.txt.gz``, identical to OpenAI's), or
  for SigLIP a real-format SentencePiece tokenizer (``spiece.model`` trained
  on the fly + ``tokenizer_config.json``);
- ``<out>/<sam file>``: a ``segment_anything`` ``Sam`` state dict with the
  official key names (``image_encoder.*``, ``prompt_encoder.*``,
  ``mask_decoder.*``, ``pixel_mean``, ``pixel_std``).

For RSRefSeg 2 the module also writes (functions, used by the tests): a
real-format SigLIP2 (Gemma) tokenizer (:func:`build_gemma_tokenizer`), a
SigLIP2 ``save_pretrained`` directory (:func:`save_siglip2`), an official
``sam2.1_hiera_*.pt`` file (:func:`save_sam2`) and an HF SAM 2.1 directory
(:func:`save_hf_sam2`). Run on an RSRefSeg 2 config (a ``SAM2PromptHead``,
e.g. ``configs/rsrefseg2_tiny_synthetic.py``), the script writes the
SigLIP2 directory and the official SAM 2.1 file.

The paths written are the config's ``model.backbone.pretrained`` and
``model.decode_head.checkpoint``, so the config then loads them through the
same ``init_weights`` path as real checkpoints. With a paper config the
checkpoints are real-size (random weights for speed measurements without
downloads); ``--device cuda`` initialises them on the GPU (seconds instead
of minutes for SigLIP so400m on a CPU).

Example::

    python tools/misc/make_tiny_checkpoints.py \
        configs/rsrefseg_tiny_synthetic.py
    python tools/misc/make_tiny_checkpoints.py configs/rsrefseg_vitb.py \
        --device cuda --cfg-options \
        model.backbone.pretrained=/tmp/ck/siglip-so400m-patch14-384 \
        model.decode_head.checkpoint=/tmp/ck/sam_vit_b_01ec64.pth
"""
import argparse
import gzip
import os
import os.path as osp

import torch
from mmengine.config import Config, DictAction

import mmrsrefseg  # noqa: F401  (registers the modules)
from mmrsrefseg.utils.sam_import import import_segment_anything


def bytes_to_unicode():
    """OpenAI CLIP's reversible byte -> unicode character table.

    From ``clip/simple_tokenizer.py`` (MIT licence), also in
    ``mmseg/utils/tokenizer.py``.
    """
    bs = list(range(ord('!'),
                    ord('~') + 1)) + list(range(
                        ord('¡'),
                        ord('¬') + 1)) + list(range(ord('®'),
                                                    ord('ÿ') + 1))
    cs = bs[:]
    n = 0
    for b in range(2**8):
        if b not in bs:
            bs.append(b)
            cs.append(2**8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def build_clip_tokenizer(out_dir: str, model_max_length: int = 77):
    """Save the real CLIP BPE tokenizer (``CLIPTokenizer``) into ``out_dir``.

    The vocabulary is rebuilt exactly as OpenAI's ``SimpleTokenizer`` does:
    256 byte symbols, the same with ``</w>``, 48,894 merges, then
    ``<|startoftext|>`` (49406) and ``<|endoftext|>`` (49407, also padding).

    Returns:
        CLIPTokenizer: The tokenizer loaded back from ``out_dir``.

    Raises:
        RuntimeError: If the round trip does not give 49,408 entries.
    """
    import mmseg.utils
    from transformers import AutoTokenizer, CLIPTokenizer
    bpe_path = osp.join(
        osp.dirname(mmseg.utils.__file__), 'bpe_simple_vocab_16e6.txt.gz')
    merges = gzip.open(bpe_path).read().decode('utf-8').split('\n')
    merges = merges[1:49152 - 256 - 2 + 1]
    merges = [tuple(m.split()) for m in merges]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + '</w>' for v in vocab]
    vocab += [''.join(m) for m in merges]
    vocab += ['<|startoftext|>', '<|endoftext|>']
    os.makedirs(out_dir, exist_ok=True)
    # transformers 5: CLIPTokenizer(vocab=..., merges=...) (tokenizers
    # backend); save_pretrained writes tokenizer.json, vocab.json, merges.txt
    tok = CLIPTokenizer(
        vocab={
            token: i
            for i, token in enumerate(vocab)
        },
        merges=merges,
        model_max_length=model_max_length,
        bos_token='<|startoftext|>',
        eos_token='<|endoftext|>',
        pad_token='<|endoftext|>',
        unk_token='<|endoftext|>')
    tok.save_pretrained(out_dir)
    loaded = AutoTokenizer.from_pretrained(out_dir)
    if len(loaded) != 49408:
        raise RuntimeError(f'CLIP tokenizer in {out_dir} has {len(loaded)} '
                           'entries instead of 49408')
    return loaded


def _expression_corpus():
    """Referring expressions in RRSIS-D's style (SentencePiece training).

    Their words cover those of the synthetic RRSIS-D
    (``tools/dataset_converters/make_synthetic_rrsisd.py``), so that each
    word of its expressions is one token, as in a real tokenizer.
    """
    import itertools
    objects = ('airplane', 'airport', 'baseball field', 'basketball court',
               'bridge', 'chimney', 'dam', 'expressway service area',
               'expressway toll station', 'golf field', 'ground track field',
               'harbor', 'overpass', 'ship', 'stadium', 'storage tank',
               'tennis court', 'train station', 'vehicle', 'windmill')
    colours = ('', 'white ', 'gray ', 'red ', 'blue ', 'green ', 'yellow ',
               'dark ')
    sizes = ('', 'large ', 'small ', 'larger ', 'smaller ', 'largest ',
             'smallest ')
    places = ('', ' on the left', ' on the right', ' at the top',
              ' at the bottom', ' in the middle', ' next to the road',
              ' near the water')
    articles = ('the', 'The', 'a', 'A')
    return [
        f'{a} {s}{c}{o}{p}'.strip() for a, o, c, s, p in itertools.product(
            articles, objects, colours, sizes, places)
    ]


def build_siglip_tokenizer(out_dir: str,
                           vocab_size: int = 1000,
                           model_max_length: int = 64):
    """Save a SigLIP tokenizer in the real format into ``out_dir``.

    A small unigram ``spiece.model`` is trained with sentencepiece's own
    trainer on RRSIS-D-style expressions, with SigLIP's special ids
    (``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2, no BOS), then written by
    ``SiglipTokenizer.save_pretrained`` (``spiece.model``,
    ``tokenizer_config.json``, ``special_tokens_map.json``) exactly as the
    real ``google/siglip-*`` directories hold it.

    Args:
        out_dir (str): Destination directory (created).
        vocab_size (int): SentencePiece vocabulary size (at most the text
            tower's ``vocab_size``). Defaults to 1000.
        model_max_length (int): Tokenizer length limit. Defaults to 64.

    Returns:
        SiglipTokenizer: The tokenizer loaded back with ``AutoTokenizer``.

    Raises:
        RuntimeError: If the round trip does not give a SigLIP tokenizer.
    """
    import io

    import sentencepiece as spm
    from transformers import AutoTokenizer, SiglipTokenizer
    os.makedirs(out_dir, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_expression_corpus()),
        model_writer=model,
        model_type='unigram',
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        minloglevel=2)
    spiece = osp.join(out_dir, 'spiece.model')
    with open(spiece, 'wb') as f:
        f.write(model.getvalue())
    SiglipTokenizer(
        spiece, model_max_length=model_max_length).save_pretrained(out_dir)
    loaded = AutoTokenizer.from_pretrained(out_dir)
    if type(loaded).__name__ != 'SiglipTokenizer':
        raise RuntimeError(f'{out_dir} loads as {type(loaded).__name__}, '
                           'not SiglipTokenizer')
    return loaded


def build_gemma_tokenizer(out_dir: str, vocab_size: int = 600):
    """Save a SigLIP2 (Gemma) tokenizer in the real format into ``out_dir``.

    SigLIP2 uses Gemma's SentencePiece BPE model. A small one is trained with
    sentencepiece's own trainer on RRSIS-D-style expressions with Gemma's
    settings (``<pad>`` 0, ``<eos>`` 1, ``<bos>`` 2, ``<unk>`` 3, ``<mask>``
    4, byte fallback, split digits, no dummy prefix, no whitespace
    normalisation, no lowercasing) and written as ``tokenizer.model`` plus
    ``GemmaTokenizer.save_pretrained`` files. ``tokenizer_config.json``
    carries what HF's SigLIP2 conversion sets: no BOS, EOS appended, right
    padding and ``model_input_names=['input_ids']`` (no attention mask is
    returned).

    Args:
        out_dir (str): Destination directory (created).
        vocab_size (int): SentencePiece vocabulary size (>= 300: 256 byte
            pieces come first). Defaults to 600.

    Returns:
        GemmaTokenizer: The tokenizer loaded back with ``AutoTokenizer``.

    Raises:
        RuntimeError: If the directory does not load as a ``GemmaTokenizer``
            that tokenises as the SentencePiece model plus ``<eos>``.
    """
    import io
    import json

    import sentencepiece as spm
    from tokenizers.models import BPE
    from transformers import AutoTokenizer, GemmaTokenizer
    from transformers.convert_slow_tokenizer import SentencePieceExtractor
    os.makedirs(out_dir, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_expression_corpus()),
        model_writer=model,
        model_type='bpe',
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        pad_id=0,
        eos_id=1,
        bos_id=2,
        unk_id=3,
        pad_piece='<pad>',
        eos_piece='<eos>',
        bos_piece='<bos>',
        unk_piece='<unk>',
        user_defined_symbols=['<mask>'],
        byte_fallback=True,
        split_digits=True,
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        normalization_rule_name='identity',
        allow_whitespace_only_pieces=True,
        minloglevel=2)
    spm_file = osp.join(out_dir, 'tokenizer.model')
    with open(spm_file, 'wb') as f:
        f.write(model.getvalue())
    pieces = SentencePieceExtractor(spm_file).extract(BPE)
    GemmaTokenizer(
        vocab=pieces['vocab'],
        merges=pieces['merges'],
        add_bos_token=False,
        add_eos_token=True,
        padding_side='right',
        model_input_names=['input_ids']).save_pretrained(out_dir)
    # transformers 5 keeps add_bos/add_eos in tokenizer.json only; the real
    # files (written by transformers 4) also state them here
    config_file = osp.join(out_dir, 'tokenizer_config.json')
    with open(config_file) as f:
        config = json.load(f)
    config.update(add_bos_token=False, add_eos_token=True)
    with open(config_file, 'w') as f:
        json.dump(config, f, indent=2)
    loaded = AutoTokenizer.from_pretrained(out_dir)
    processor = spm.SentencePieceProcessor(model_proto=model.getvalue())
    text = 'the white storage tank 12 on the left'
    if type(loaded).__name__ != 'GemmaTokenizer' or loaded(
            text)['input_ids'] != processor.encode(text) + [1]:
        raise RuntimeError(f'{out_dir} does not load as a GemmaTokenizer '
                           'equal to its SentencePiece model')
    return loaded


def save_siglip2(siglip_cfg: dict, out_dir: str, seed: int):
    """Save a random SigLIP2 (fixed resolution) directory.

    The fixed-resolution SigLIP2 checkpoints (``google/siglip2-so400m-
    patch16-512`` ...) are ``SiglipModel`` directories with a Gemma
    tokenizer: ``config.json`` + ``model.safetensors``, the tokenizer of
    :func:`build_gemma_tokenizer`, and the image processor (bilinear resize
    to the model size, mean = std = 0.5) written by
    ``SiglipProcessor.save_pretrained``.

    Args:
        siglip_cfg (dict): ``SiglipConfig`` kwargs; the text
            ``vocab_size`` is set to the tokenizer's size.
        out_dir (str): Destination directory (created).
        seed (int): Random seed of the weights.

    Returns:
        SiglipModel: The model written.
    """
    import copy

    from transformers import (SiglipConfig, SiglipImageProcessor, SiglipModel,
                              SiglipProcessor)
    tokenizer = build_gemma_tokenizer(out_dir)
    cfg = copy.deepcopy(siglip_cfg)
    cfg['text_config'].update(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    model = SiglipModel(SiglipConfig(**cfg))
    model.save_pretrained(out_dir)
    size = model.config.vision_config.image_size
    SiglipProcessor(
        image_processor=SiglipImageProcessor(
            size=dict(height=size, width=size),
            resample=2,
            image_mean=[0.5] * 3,
            image_std=[0.5] * 3),
        tokenizer=tokenizer).save_pretrained(out_dir)
    return model


def _perturb_(module: torch.nn.Module, std: float = 0.02):
    """Add noise to every float tensor so that no two are alike or zero."""
    with torch.no_grad():
        for tensor in module.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(torch.randn_like(tensor) * std)


def save_sam2(model_cfg: dict, out_file: str, seed: int):
    """Save a random SAM 2.1 in the official ``sam2.1_hiera_*.pt`` format.

    ``torch.save({'model': state_dict})`` of Meta's full ``SAM2Base``
    (image encoder, SAM heads and the video memory modules), the file
    ``sam2.build_sam._load_checkpoint`` loads strictly.

    Args:
        model_cfg (dict): ``SAM2Base`` config (``mmrsrefseg.utils.
            sam2_import.sam2_model_cfg`` or a tiny variant).
        out_file (str): Destination ``.pt`` file.
        seed (int): Random seed of the weights.

    Returns:
        SAM2Base: The model written.
    """
    from mmrsrefseg.utils.sam2_import import build_sam2_model
    torch.manual_seed(seed)
    model = build_sam2_model(model_cfg)
    _perturb_(model)
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    torch.save({'model': model.state_dict()}, out_file)
    return model


def hf_sam2_config(model_cfg: dict):
    """transformers ``Sam2Config`` with the architecture of a Meta config.

    Args:
        model_cfg (dict): Meta ``SAM2Base`` config (Hiera trunk with
            ``dim_mul = head_mul = 2``, FPN neck, SAM 2.1 heads).

    Returns:
        transformers.Sam2Config: Image model (no memory modules), the mask
        decoder's IoU head at Meta's fixed 256 channels and the dynamic
        multimask switches of ``model_cfg``.
    """
    import inspect

    from sam2.modeling.backbones.hieradet import Hiera
    from transformers import Sam2Config, Sam2HieraDetConfig, Sam2VisionConfig
    trunk = {  # Hiera's defaults for what a packaged config leaves out
        k: p.default
        for k, p in inspect.signature(Hiera).parameters.items()
    }
    trunk.update(model_cfg['image_encoder']['trunk'])
    neck = model_cfg['image_encoder']['neck']
    size, width = model_cfg['image_size'], neck['d_model']
    stages = len(trunk['stages'])
    backbone = Sam2HieraDetConfig(
        hidden_size=trunk['embed_dim'],
        num_attention_heads=trunk['num_heads'],
        blocks_per_stage=list(trunk['stages']),
        embed_dim_per_stage=[trunk['embed_dim'] * 2**i for i in range(stages)],
        num_attention_heads_per_stage=[
            trunk['num_heads'] * 2**i for i in range(stages)
        ],
        window_size_per_stage=list(trunk['window_spec']),
        global_attention_blocks=list(trunk['global_att_blocks']),
        window_positional_embedding_background_size=list(
            trunk['window_pos_embed_bkg_spatial_size']),
        image_size=[size, size])
    vision = Sam2VisionConfig(
        backbone_config=backbone,
        backbone_channel_list=list(neck['backbone_channel_list']),
        backbone_feature_sizes=[[size // s, size // s] for s in (4, 8, 16)],
        fpn_hidden_size=width,
        fpn_top_down_levels=list(neck['fpn_top_down_levels']))
    extra = model_cfg.get('sam_mask_decoder_extra_args') or {}
    return Sam2Config(
        vision_config=vision,
        prompt_encoder_config=dict(hidden_size=width, image_size=size),
        mask_decoder_config=dict(
            hidden_size=width,
            iou_head_hidden_dim=256,
            dynamic_multimask_via_stability=extra.get(
                'dynamic_multimask_via_stability', False),
            dynamic_multimask_stability_delta=extra.get(
                'dynamic_multimask_stability_delta', 0.05),
            dynamic_multimask_stability_thresh=extra.get(
                'dynamic_multimask_stability_thresh', 0.98)))


def save_hf_sam2(model_cfg: dict, out_dir: str, seed: int):
    """Save a random HF SAM 2.1 directory (``Sam2Model.save_pretrained``).

    The layout of ``facebook/sam2.1-hiera-*`` on the Hugging Face hub, with
    the architecture of the Meta config (:func:`hf_sam2_config`). The image
    and point encodings share one random-Fourier matrix (transformers'
    ``convert_sam2_to_hf.py`` writes Meta's one matrix into both).

    Args:
        model_cfg (dict): Meta ``SAM2Base`` config.
        out_dir (str): Destination directory (created).
        seed (int): Random seed of the weights.

    Returns:
        transformers.Sam2Model: The model written.
    """
    from transformers import Sam2Model
    torch.manual_seed(seed)
    model = Sam2Model(hf_sam2_config(model_cfg))
    _perturb_(model)
    with torch.no_grad():  # one matrix twice, as convert_sam2_to_hf.py
        model.shared_image_embedding.positional_embedding.copy_(
            model.prompt_encoder.shared_embedding.positional_embedding)
    model.save_pretrained(out_dir)
    return model


def drop_pretraining_record(out_dir: str):
    """Remove the ``pretrain_tiny_clip.py`` record of fresh random weights."""
    marker = osp.join(out_dir, 'mmrsrefseg_pretraining.json')
    if osp.exists(marker):
        os.remove(marker)


def save_clip(backbone_cfg: dict, out_dir: str, seed: int):
    """Save a random CLIP/SigLIP of ``backbone_cfg['config']`` + tokenizer."""
    from transformers import CLIPConfig, CLIPModel, SiglipConfig, SiglipModel
    torch.manual_seed(seed)
    if backbone_cfg['model_type'] == 'clip':
        model = CLIPModel(CLIPConfig(**backbone_cfg['config']))
    else:
        model = SiglipModel(SiglipConfig(**backbone_cfg['config']))
    model.save_pretrained(out_dir)
    drop_pretraining_record(out_dir)
    text_cfg = model.config.text_config
    if backbone_cfg['model_type'] == 'clip':
        build_clip_tokenizer(out_dir, text_cfg.max_position_embeddings)
    else:
        build_siglip_tokenizer(out_dir, min(1000, text_cfg.vocab_size),
                               text_cfg.max_position_embeddings)
    return model


def save_sam(head_cfg: dict, out_file: str, seed: int):
    """Save a random SAM with official key names for ``head_cfg``."""
    from mmseg.registry import MODELS
    torch.manual_seed(seed)
    head_cfg = dict(head_cfg, checkpoint=None)
    head = MODELS.build(head_cfg)
    modeling, _ = import_segment_anything()
    sam = modeling.Sam(
        image_encoder=head.image_encoder,
        prompt_encoder=head.prompt_encoder,
        mask_decoder=head.mask_decoder,
        pixel_mean=head.pixel_mean.flatten().tolist(),
        pixel_std=head.pixel_std.flatten().tolist())
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    torch.save({k: v.cpu() for k, v in sam.state_dict().items()}, out_file)
    return sam


def save_siglip2_backbone(backbone_cfg: dict, seed: int):
    """Write the SigLIP2 directory of an RSRefSeg 2 backbone config.

    Args:
        backbone_cfg (dict): ``CLIPBackbone`` config with
            ``model_type='siglip'``, ``pretrained`` (the directory written)
            and ``config`` (``SiglipConfig`` kwargs).
        seed (int): Random seed of the weights.

    Returns:
        SiglipModel: The model written (:func:`save_siglip2`).

    Raises:
        ValueError: If the backbone is not a SigLIP, or the config's text
            ``vocab_size`` differs from the size of the Gemma tokenizer
            written (the weights would not load into the config's model).
    """
    if backbone_cfg.get('model_type') != 'siglip':
        raise ValueError('RSRefSeg 2 needs a SigLIP backbone '
                         "(model_type='siglip'), got "
                         f"{backbone_cfg.get('model_type')!r}")
    out_dir = backbone_cfg['pretrained']
    model = save_siglip2(backbone_cfg['config'], out_dir, seed)
    drop_pretraining_record(out_dir)
    want = backbone_cfg['config']['text_config'].get('vocab_size')
    got = model.config.text_config.vocab_size
    if want != got:
        raise ValueError(
            f'model.backbone.config.text_config.vocab_size is {want}, but '
            f'the Gemma tokenizer written to {out_dir} has {got} entries: '
            f'set vocab_size={got}')
    return model


def write_rsrefseg2(backbone_cfg: dict, head_cfg: dict, seed: int,
                    force: bool):
    """Write the SigLIP2 directory and SAM 2.1 file an RSRefSeg 2 config
    names (``pretrained``, ``checkpoint``), keeping existing ones unless
    ``force``; SAM 2.1 takes ``seed + 1``."""
    from mmrsrefseg.utils.sam2_import import sam2_model_cfg
    out_dir, sam_file = backbone_cfg['pretrained'], head_cfg['checkpoint']
    if force or not osp.exists(osp.join(out_dir, 'config.json')):
        save_siglip2_backbone(backbone_cfg, seed)
        print(f'wrote SigLIP2 checkpoint + Gemma tokenizer to {out_dir}')
    else:
        print(f'kept existing {out_dir}')
    if force or not osp.exists(sam_file):
        sam2_cfg = head_cfg.get('sam2_cfg') or sam2_model_cfg(
            head_cfg['preset'])
        save_sam2(sam2_cfg, sam_file, seed + 1)
        print(f'wrote SAM 2.1 checkpoint to {sam_file}')
    else:
        print(f'kept existing {sam_file}')


def parse_args():
    parser = argparse.ArgumentParser(
        description='Write tiny random CLIP (HF save_pretrained, real CLIP '
        'BPE tokenizer) and SAM (official .pth keys) checkpoints for the '
        "architecture of CONFIG, at the config's own weight paths; for an "
        'RSRefSeg 2 config a SigLIP2 directory (Gemma tokenizer) and an '
        'official-format SAM 2.1 .pt file.')
    parser.add_argument('config', help='config whose model to write')
    parser.add_argument(
        '--seed', type=int, default=0, help='random seed (default 0)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. model.backbone.pretrained=DIR '
        'model.decode_head.checkpoint=FILE to write elsewhere')
    parser.add_argument(
        '--force',
        action='store_true',
        help='overwrite existing checkpoints (default: keep them)')
    parser.add_argument(
        '--device',
        default='cpu',
        help='device the random weights are initialised on (cuda: fast for '
        'real-size models); same formats, other random values')
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    backbone, head = cfg.model.backbone, cfg.model.decode_head
    clip_dir, sam_file = backbone.get('pretrained'), head.get('checkpoint')
    if not clip_dir or not sam_file:
        raise ValueError(f'{args.config} must set model.backbone.pretrained '
                         'and model.decode_head.checkpoint')
    if head.type == 'SAM2PromptHead':  # RSRefSeg 2
        write_rsrefseg2(backbone.to_dict(), head.to_dict(), args.seed,
                        args.force)
        return
    if args.force or not osp.exists(osp.join(clip_dir, 'config.json')):
        with torch.device(args.device):
            save_clip(backbone.to_dict(), clip_dir, args.seed)
        print(f'wrote {backbone.model_type} checkpoint + tokenizer to '
              f'{clip_dir}')
    else:
        print(f'kept existing {clip_dir}')
    if args.force or not osp.exists(sam_file):
        with torch.device(args.device):
            save_sam(head.to_dict(), sam_file, args.seed + 1)
        print(f'wrote SAM checkpoint to {sam_file}')
    else:
        print(f'kept existing {sam_file}')


if __name__ == '__main__':
    main()
