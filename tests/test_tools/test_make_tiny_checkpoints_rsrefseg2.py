# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Real-format RSRefSeg 2 fixtures of tools/misc/make_tiny_checkpoints.py.

The SigLIP2 (Gemma) tokenizer, a SigLIP2 directory, an official SAM 2.1
``.pt`` file and an HF SAM 2.1 directory, each loaded the way the real ones
are (``AutoTokenizer``, ``SiglipModel.from_pretrained``, Meta's
``_load_checkpoint``, ``Sam2Model.from_pretrained``).
"""
import json
import os.path as osp
import re

import pytest
import torch

from mmrsrefseg.testing.authors_rsrefseg2 import (tiny_rsrefseg2_cfg,
                                                  tiny_sam2_cfg)
from mmrsrefseg.utils.sam2_import import build_sam2_model

TEXTS = ['the red ship', 'the white storage tank 12 on the left']


def test_gemma_tokenizer_tokenises_as_siglip2(gemma_tokenizer_dir):
    import sentencepiece as spm
    from transformers import AutoTokenizer
    for name in ('tokenizer.model', 'tokenizer.json', 'tokenizer_config.json'):
        assert osp.isfile(osp.join(gemma_tokenizer_dir, name)), name
    with open(osp.join(gemma_tokenizer_dir, 'tokenizer_config.json')) as f:
        config = json.load(f)
    assert config['tokenizer_class'] == 'GemmaTokenizer'
    assert config['padding_side'] == 'right'
    assert config['model_input_names'] == ['input_ids']
    assert (config['add_bos_token'], config['add_eos_token']) == (False, True)
    tok = AutoTokenizer.from_pretrained(gemma_tokenizer_dir)
    assert type(tok).__name__ == 'GemmaTokenizer'
    assert [
        tok.pad_token_id, tok.eos_token_id, tok.bos_token_id, tok.unk_token_id
    ] == [0, 1, 2, 3]
    sp = spm.SentencePieceProcessor(
        model_file=osp.join(gemma_tokenizer_dir, 'tokenizer.model'))
    for text in TEXTS + ['Unseen Words: xyz!']:  # byte fallback, case kept
        assert tok(text)['input_ids'] == sp.encode(text) + [1]
    # the authors' call: a batch, padded to the longest, no attention mask
    batch = tok(
        TEXTS,
        return_tensors='pt',
        padding=True,
        truncation=True,
        max_length=128)
    assert list(batch) == ['input_ids']
    ids = batch['input_ids']
    short = len(sp.encode(TEXTS[0])) + 1
    assert ids.shape == (2, len(sp.encode(TEXTS[1])) + 1)
    assert ids[0, short - 1] == 1 and (ids[0, short:] == 0).all()
    assert ids[1, -1] == 1  # the longest one ends with <eos>


def test_siglip2_directory_loads(tmp_path, tiny_tools):
    from transformers import AutoProcessor, AutoTokenizer, SiglipModel
    cfg = tiny_rsrefseg2_cfg(vocab_size=600)['siglip']
    out = str(tmp_path / 'siglip2')
    written = tiny_tools.save_siglip2(cfg, out, seed=0)
    with open(osp.join(out, 'config.json')) as f:
        assert json.load(f)['model_type'] == 'siglip'
    model, info = SiglipModel.from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info
    for (k, a), b in zip(written.state_dict().items(),
                         model.state_dict().values()):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=k)
    tok = AutoTokenizer.from_pretrained(out)
    assert type(tok).__name__ == 'GemmaTokenizer'
    assert model.config.text_config.vocab_size == len(tok)
    assert model.config.text_config.max_position_embeddings == 64
    image = AutoProcessor.from_pretrained(out).image_processor
    assert (image.size.height, image.size.width) == (64, 64)
    assert tuple(image.image_mean) == tuple(image.image_std) == (0.5, ) * 3


def test_sam2_checkpoint_loads_strictly_into_meta_sam2(tmp_path, tiny_tools):
    from sam2.build_sam import _load_checkpoint
    cfg = tiny_sam2_cfg()
    path = str(tmp_path / 'sam2.1_hiera_tiny_test.pt')
    written = tiny_tools.save_sam2(cfg, path, seed=0)
    raw = torch.load(path, map_location='cpu', weights_only=True)
    assert list(raw) == ['model']
    for part in ('image_encoder.trunk.', 'image_encoder.neck.',
                 'memory_attention.', 'memory_encoder.', 'sam_mask_decoder.',
                 'sam_prompt_encoder.', 'obj_ptr_proj.', 'mask_downsample.'):
        assert any(k.startswith(part) for k in raw['model']), part
    for key in ('no_mem_embed', 'no_mem_pos_enc', 'maskmem_tpos_enc',
                'no_obj_ptr', 'no_obj_embed_spatial'):
        assert key in raw['model'], key
    model = build_sam2_model(cfg)
    _load_checkpoint(model, path)  # Meta's loader: raises unless strict
    for k, v in written.state_dict().items():
        torch.testing.assert_close(
            model.state_dict()[k], v, atol=0, rtol=0, msg=k)
    # every tensor was perturbed: a swapped key would be caught
    assert all(v.abs().sum() > 0 for v in raw['model'].values()
               if v.is_floating_point())


# Meta sam2 image encoder name -> transformers Sam2VisionModel name.
_META_TO_HF_ENCODER = (
    (r'^trunk\.', 'backbone.'),
    (r'patch_embed\.proj\.', 'patch_embed.projection.'),
    (r'\.norm1\.', '.layer_norm1.'),
    (r'\.norm2\.', '.layer_norm2.'),
    (r'\.mlp\.layers\.0\.', '.mlp.proj_in.'),
    (r'\.mlp\.layers\.1\.', '.mlp.proj_out.'),
    (r'^neck\.convs\.(\d+)\.conv\.', r'neck.convs.\1.'),
)


def test_hf_sam2_directory_has_the_meta_architecture(tmp_path, tiny_tools):
    from transformers import Sam2Model
    cfg = tiny_sam2_cfg()
    out = str(tmp_path / 'sam2.1-hf')
    tiny_tools.save_hf_sam2(cfg, out, seed=0)
    hf, info = Sam2Model.from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info
    hf.eval()
    meta = build_sam2_model(cfg).eval()

    def numel(module, skip=()):
        return sum(v.numel() for k, v in module.state_dict().items()
                   if not any(s in k for s in skip))

    assert numel(hf.mask_decoder) == numel(meta.sam_mask_decoder)
    assert numel(hf.prompt_encoder,
                 ('shared_embedding', )) == numel(meta.sam_prompt_encoder,
                                                  ('pe_layer', ))
    assert hf.no_memory_embedding.shape == meta.no_mem_embed.shape
    # the image encoders are the same function of the same weights
    hf_encoder = hf.vision_encoder.state_dict()
    mapped = {}
    for key, value in meta.image_encoder.state_dict().items():
        for pattern, repl in _META_TO_HF_ENCODER:
            key = re.sub(pattern, repl, key)
        mapped[key] = value
    assert set(mapped) == set(hf_encoder)
    hf.vision_encoder.load_state_dict(mapped, strict=True)
    torch.manual_seed(0)
    image = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        expected = meta.image_encoder(image)['backbone_fpn']
        got = hf.vision_encoder(image).fpn_hidden_states
    assert [tuple(f.shape) for f in got] == [(1, 32, 32, 32), (1, 32, 16, 16),
                                             (1, 32, 8, 8)]
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    assert hf.config.mask_decoder_config.dynamic_multimask_via_stability


@pytest.mark.parametrize('preset,stages', [('tiny', [1, 2, 7, 2]),
                                           ('large', [2, 6, 36, 4])])
def test_hf_config_of_real_presets(preset, stages, tiny_tools):
    from mmrsrefseg.utils.sam2_import import sam2_model_cfg
    config = tiny_tools.hf_sam2_config(sam2_model_cfg(preset))
    backbone = config.vision_config.backbone_config
    assert backbone.blocks_per_stage == stages
    assert config.vision_config.backbone_feature_sizes == [[256, 256],
                                                           [128, 128],
                                                           [64, 64]]
    assert config.mask_decoder_config.hidden_size == 256
    if preset == 'tiny':  # transformers' defaults are SAM 2.1 Hiera-T's
        from transformers import Sam2HieraDetConfig
        default = Sam2HieraDetConfig().to_dict()
        assert {k: backbone.to_dict()[k] for k in default} == default


def test_gemma_tokenizer_covers_the_synthetic_expressions(gemma_tokenizer_dir):
    """Every word of every synthetic RRSIS-D expression is one token.

    All expressions ``make_synthetic_rrsisd.py`` can write (article, size
    word, colour, category, position), tokenised as the tiny RSRefSeg 2
    reads them: one piece per word plus ``<eos>``, no ``<unk>`` and no
    byte-fallback pieces.
    """
    import importlib.util
    import itertools

    from transformers import AutoTokenizer
    path = osp.join(
        osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'tools',
        'dataset_converters', 'make_synthetic_rrsisd.py')
    spec = importlib.util.spec_from_file_location('make_synthetic', path)
    synth = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(synth)
    tok = AutoTokenizer.from_pretrained(gemma_tokenizer_dir)
    sizes = (None, 'larger', 'smaller', 'largest', 'smallest')
    texts = {
        synth.phrase(
            dict(category=cat, colour=colour, size=size, position=pos),
            article)
        for article, cat, colour, size, pos in itertools.product(
            set(synth.ARTICLES), synth.SHAPES, (None, *synth.COLOURS), sizes, (
                None, *synth.POSITIONS))
    }
    # superlatives take "the": "A largest" is "The largest"
    assert len(texts) == 4 * 6 * 6 * 5 * 5 - 2 * 6 * 6 * 2 * 5
    for text in sorted(texts):
        pieces = tok.convert_ids_to_tokens(tok(text)['input_ids'])
        assert len(pieces) == len(text.split()) + 1, (text, pieces)
        assert pieces[-1] == '<eos>' and '<unk>' not in pieces, pieces
        assert not any(p.startswith('<0x') for p in pieces), (text, pieces)
