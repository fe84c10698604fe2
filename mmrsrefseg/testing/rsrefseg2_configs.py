# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Tiny RSRefSeg 2 configurations for CPU tests: the authors' composition
(:mod:`.authors_rsrefseg2`) and ours with the same shapes."""
import copy
import os.path as osp

from mmrsrefseg.utils.sam2_import import sam2_model_cfg

__all__ = ['tiny_sam2_cfg', 'tiny_rsrefseg2_cfg', 'rsrefseg2_model_cfg']


def tiny_sam2_cfg(image_size: int = 128, width: int = 32) -> dict:
    """A SAM 2.1 config small enough for CPU tests (Hiera-L's structure).

    Hiera with 4 stages of 1, 1, 2, 1 blocks (8..64 channels; four stages are
    needed for the three FPN levels ``scalp=1`` keeps and the high-res
    features; a global-attention block must not open a stage), FPN and SAM
    heads at ``width`` channels, the memory modules scaled down alike (they
    are in the official checkpoint file, not in the authors' model).

    Args:
        image_size (int): Input side S (a multiple of 32). Defaults to 128.
        width (int): FPN / prompt width C (a multiple of 8). Defaults to 32.

    Returns:
        dict: A :func:`~mmrsrefseg.utils.sam2_import.sam2_model_cfg`-style
        config with the image-predictor switches.
    """
    cfg = sam2_model_cfg('large')
    enc, mem = cfg['image_encoder'], cfg['memory_attention']
    enc['trunk'].update(
        embed_dim=8,
        num_heads=1,
        stages=[1, 1, 2, 1],
        global_att_blocks=[3],
        window_pos_embed_bkg_spatial_size=[4, 4],
        window_spec=[8, 4, 4, 2])
    enc['neck'].update(d_model=width, backbone_channel_list=[64, 32, 16, 8])
    enc['neck']['position_encoding']['num_pos_feats'] = width
    side, mem_dim = image_size // 16, width // 2
    mem.update(d_model=width, num_layers=1)
    mem['layer'].update(d_model=width, dim_feedforward=2 * width)
    mem['layer']['self_attention'].update(
        embedding_dim=width, feat_sizes=[side, side])
    mem['layer']['cross_attention'].update(
        embedding_dim=width, feat_sizes=[side, side], kv_in_dim=mem_dim)
    menc = cfg['memory_encoder']
    menc.update(out_dim=mem_dim, in_dim=width)
    menc['position_encoding']['num_pos_feats'] = mem_dim
    menc['mask_downsampler']['embed_dim'] = width
    menc['fuser'].update(num_layers=1)
    menc['fuser']['layer']['dim'] = width
    cfg['image_size'] = image_size
    return cfg


def tiny_rsrefseg2_cfg(vocab_size: int) -> dict:
    """Tiny configs of the three parts (a CPU forward in well under 1 s).

    Args:
        vocab_size (int): Text vocabulary size (``len(tokenizer)``).

    Returns:
        dict: ``sam2`` (:func:`tiny_sam2_cfg`, 128 px input, 8x8 image
        embeddings, 32x32 mask logits), ``siglip`` (``SiglipConfig`` kwargs:
        width 32, 2 layers, 64 px input, 8x8 grid, 64 text positions) and
        ``prompter`` (2 heads, inner width 16, MLP width 24).
    """
    tower = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4)
    return dict(
        sam2=tiny_sam2_cfg(),
        siglip=dict(
            text_config=dict(
                vocab_size=vocab_size,
                max_position_embeddings=64,
                pad_token_id=0,  # Gemma's <pad>, <bos>, <eos>
                bos_token_id=2,
                eos_token_id=1,
                **tower),
            vision_config=dict(image_size=64, patch_size=8, **tower)),
        prompter=dict(num_heads=2, internal_dim=16, mlp_dim=24))


def rsrefseg2_model_cfg(parts: dict, tokenizer_dir: str) -> dict:
    """Our ``RSRefSeg2`` config with the shapes of ``parts``.

    Args:
        parts (dict): A :func:`tiny_rsrefseg2_cfg`-style dict (``sam2``,
            ``siglip``, ``prompter``).
        tokenizer_dir (str): The SigLIP2 (Gemma) tokenizer directory.

    Returns:
        dict: ``model`` config of ``RSRefSeg2`` with the paper config's
        fine-tuning policy (LoRA rank 16 on the authors' targets), no
        weight files.
    """
    from mmengine.config import Config
    paper = Config.fromfile(
        osp.join(
            osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
            'configs', '_base_', 'models',
            'rsrefseg2_siglip2-so400m_sam2.1-hiera-l.py')).model.to_dict()
    siglip = copy.deepcopy(parts['siglip'])
    vision = siglip['vision_config']
    grid = vision['image_size'] // vision['patch_size']
    side = parts['sam2']['image_size']
    prompter = dict(parts.get('prompter') or {})
    paper['data_preprocessor'].update(
        size=(side, side), test_cfg=dict(size=(side, side)))
    paper['backbone'].update(
        pretrained=None, tokenizer=tokenizer_dir, config=siglip)
    paper['neck'].update(
        in_channels=siglip['text_config']['hidden_size'],
        prompt_channels=parts['sam2']['image_encoder']['neck']['d_model'],
        num_heads=prompter.get('num_heads', 8),
        attn_channels=prompter.get('internal_dim', 512),
        ffn_channels=prompter.get('mlp_dim', 512),
        image_grid=(grid, grid),
        mask_prompt_size=(side // 4, side // 4))
    paper['decode_head'].update(
        preset=None, sam2_cfg=copy.deepcopy(parts['sam2']), checkpoint=None)
    return paper
