# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""CLIPBackbone: parity with transformers, real loading path, padding."""
import pytest
import torch

from mmrsrefseg.models import CLIPBackbone

TINY_CLIP = dict(
    projection_dim=24,
    text_config=dict(
        vocab_size=49408,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=24,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407),
    vision_config=dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        patch_size=8))
TINY_SIGLIP = dict(
    text_config=dict(
        vocab_size=49408,
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
        image_size=32,
        patch_size=8))
CONFIGS = {'clip': TINY_CLIP, 'siglip': TINY_SIGLIP}
TEXTS = [
    'the red vehicle on the left',
    'A airplane at the bottom',
    'the larger storage tank next to the white tennis court at the top',
]


@pytest.fixture(scope='module', params=['clip', 'siglip'])
def saved(request, tmp_path_factory, tiny_tools):
    """A tiny model saved with save_pretrained + the real CLIP tokenizer."""
    out = str(tmp_path_factory.mktemp(request.param))
    backbone = dict(model_type=request.param, config=CONFIGS[request.param])
    model = tiny_tools.save_clip(backbone, out, seed=3)
    return request.param, out, model.eval()


def build(model_type, pretrained, **options):
    torch.manual_seed(123)  # different from the saved weights
    bb = CLIPBackbone(
        model_type=model_type,
        config=CONFIGS[model_type],
        pretrained=pretrained,
        **options)
    bb.init_weights()
    return bb.eval()


@torch.no_grad()
@pytest.mark.parametrize('options', [
    dict(clip_resize='bicubic_antialias'),
    dict(),
    dict(text_feature='projected'),
    dict(text_feature='last_hidden_state')
])
def test_parity_with_transformers(saved, options):
    model_type, path, reference = saved
    if model_type == 'clip' and options.get(
            'text_feature') == 'last_hidden_state':
        with pytest.raises(ValueError, match='CLIP needs'):
            build(model_type, path, **options)
        return
    bb = build(model_type, path, **options)
    images = torch.rand(2, 3, 48, 40) * 255
    pixel_values = bb.preprocess(images)
    assert pixel_values.shape == (2, 3, 32, 32)
    hidden = reference.vision_model(
        pixel_values=pixel_values).last_hidden_state
    if model_type == 'clip':
        # every token through the layers of get_image_features' CLS path
        vision = reference.vision_model
        tokens = reference.visual_projection(vision.post_layernorm(hidden))
        torch.testing.assert_close(
            tokens[:, 0],
            reference.get_image_features(
                pixel_values=pixel_values).pooler_output,
            atol=1e-5,
            rtol=0)
        hidden = tokens[:, 1:]
    ref_map = hidden.transpose(1, 2).reshape(2, -1, 4, 4)
    torch.testing.assert_close(
        bb(images, TEXTS[:2])['visual_feats'], ref_map, atol=1e-5, rtol=0)
    import torch.nn.functional as F
    mean, std = bb.image_mean, bb.image_std
    if options.get('clip_resize') == 'bicubic_antialias':
        expected = (F.interpolate(
            images, (32, 32), mode='bicubic', antialias=True) - mean) / std
    else:  # the authors': normalise, then bilinear without antialias
        expected = F.interpolate(
            (images - mean) / std, (32, 32), mode='bilinear')
    torch.testing.assert_close(pixel_values, expected, atol=1e-5, rtol=0)

    out = bb(images, TEXTS[:2])
    c = bb.embed_dims
    assert out['visual_feats'].shape == (2, c, 4, 4)
    assert out['text_feats'].shape[::2] == (2, c)
    assert out['text_mask'].dtype == torch.bool
    if model_type == 'clip':
        tokens = bb.tokenize(TEXTS[:2])
        ref_txt = reference.get_text_features(**tokens).pooler_output
        torch.testing.assert_close(
            out['text_embeds'], ref_txt, atol=1e-5, rtol=0)
        assert out['logit_bias'] is None
        torch.testing.assert_close(out['logit_scale'],
                                   reference.logit_scale.exp().reshape(()))
        return
    torch.testing.assert_close(out['logit_bias'],
                               reference.logit_bias.reshape(()))
    tok = bb.tokenizer
    # The authors': each expression alone, unpadded (padding=True at batch
    # 1): g = the pooled (EOS) feature, L = last_hidden_state (or the head
    # applied to it with text_feature='projected').
    for i, text in enumerate(TEXTS[:2]):
        ids = tok([text],
                  padding=True,
                  truncation=True,
                  max_length=32,
                  return_tensors='pt')['input_ids']
        assert ids[0, -1] == tok.eos_token_id
        ref_out = reference.text_model(input_ids=ids)
        torch.testing.assert_close(
            out['text_embeds'][i], ref_out.pooler_output[0], atol=1e-5, rtol=0)
        n = ids.shape[1]
        assert int(out['text_mask'][i].sum()) == n
        ref_tokens = ref_out.last_hidden_state[0]
        if options.get('text_feature') == 'projected':
            ref_tokens = reference.text_model.head(ref_tokens)
        torch.testing.assert_close(
            out['text_feats'][i, :n], ref_tokens, atol=1e-5, rtol=0)


def test_siglip_tokenizer_real_format(saved):
    """spiece.model + tokenizer_config.json load through AutoTokenizer."""
    import os
    model_type, path, _ = saved
    if model_type != 'siglip':
        pytest.skip('SigLIP only')
    assert {'spiece.model', 'tokenizer_config.json'} <= set(os.listdir(path))
    bb = CLIPBackbone('siglip', TINY_SIGLIP, pretrained=path)
    assert type(bb.tokenizer).__name__ == 'SiglipTokenizer'
    enc = bb.tokenize(['The White Storage-Tank, on the left.', 'ship'])
    ids, mask = enc['input_ids'], enc['attention_mask']
    assert ids.shape[1] == int(mask.sum(1).max())  # padded to the longest
    assert ids[0, int(mask[0].sum()) - 1] == 1  # </s> ends each expression
    assert ids[1, int(mask[1].sum()) - 1] == 1
    # SigLIP canonicalises: lower case, punctuation dropped
    same = bb.tokenize(['the white storagetank on the left'])['input_ids']
    assert ids[0, :same.shape[1]].tolist() == same[0].tolist()


def test_missing_tokenizer_backend_is_named(saved, monkeypatch):
    import importlib.util

    import transformers
    model_type, path, _ = saved
    if model_type != 'siglip':
        pytest.skip('SigLIP only')

    def no_sentencepiece(*args, **kwargs):
        raise ImportError('SiglipTokenizer requires the SentencePiece '
                          'library but it was not found in your environment')

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(transformers.AutoTokenizer, 'from_pretrained',
                        no_sentencepiece)
    monkeypatch.setattr(
        importlib.util, 'find_spec', lambda name, *a: None
        if name == 'sentencepiece' else real_find_spec(name, *a))
    bb = CLIPBackbone('siglip', TINY_SIGLIP, pretrained=path)
    with pytest.raises(ImportError, match='`sentencepiece` is needed'):
        bb.tokenize(['a ship'])


@torch.no_grad()
def test_padding_does_not_change_a_sample(saved):
    """A batch of mixed-length expressions = each expression alone."""
    model_type, path, _ = saved
    bb = build(model_type, path)
    images = torch.rand(3, 3, 32, 32) * 255
    batch = bb(images, TEXTS)
    lengths = batch['text_mask'].sum(1)
    assert len(set(lengths.tolist())) == 3  # really mixed lengths
    for i, text in enumerate(TEXTS):
        single = bb(images[i:i + 1], [text])
        n = int(lengths[i])
        torch.testing.assert_close(
            single['text_embeds'][0],
            batch['text_embeds'][i],
            atol=1e-5,
            rtol=0)
        real = batch['text_mask'][i]
        torch.testing.assert_close(
            single['text_feats'][0][single['text_mask'][0]],
            batch['text_feats'][i][real],
            atol=1e-5,
            rtol=0)
        assert int(single['text_mask'][0].sum()) == n


def test_tokenizer_matches_openai_clip(clip_tokenizer_dir):
    """Our HF tokenizer files reproduce OpenAI CLIP's ids (mmseg's copy)."""
    from mmseg.utils import tokenize
    bb = CLIPBackbone('clip', TINY_CLIP, tokenizer=clip_tokenizer_dir)
    ids = bb.tokenize(['A airplane at the bottom'])['input_ids'][0]
    ref = tokenize(['A airplane at the bottom'], context_length=24)[0]
    assert ids.tolist() == ref[:len(ids)].tolist()
    assert ids[0] == 49406 and ids[-1] == 49407


def test_truncation_is_counted(clip_tokenizer_dir):
    bb = CLIPBackbone(
        'clip', TINY_CLIP, tokenizer=clip_tokenizer_dir, max_length=8)
    out = bb.tokenize(['a very long referring expression ' * 4, 'a ship'])
    assert out['input_ids'].shape == (2, 8)
    assert out['input_ids'][0, -1] == 49407  # EOS kept after truncation
    assert bb.num_truncated == 1


def test_bad_tokenizer_and_text(clip_tokenizer_dir, monkeypatch):
    import transformers

    class TwoEntryTokenizer:  # what transformers 5 gives offline for hub ids

        def __len__(self):
            return 2

    monkeypatch.setattr(transformers.AutoTokenizer, 'from_pretrained',
                        lambda *a, **k: TwoEntryTokenizer())
    bb = CLIPBackbone('clip', TINY_CLIP, pretrained='openai/some-hub-id')
    with pytest.raises(ValueError, match='2 entries'):
        bb.tokenize(['a ship'])
    bb = CLIPBackbone('clip', TINY_CLIP)
    with pytest.raises(ValueError, match='needs `tokenizer`'):
        bb.tokenize(['a ship'])
    monkeypatch.undo()
    bb = CLIPBackbone('clip', TINY_CLIP, tokenizer=clip_tokenizer_dir)
    with pytest.raises(ValueError, match='empty'):
        bb.tokenize(['a ship', '  '])
    with pytest.raises(ValueError, match='2 images but 1'):
        bb(torch.zeros(2, 3, 32, 32), ['a ship'])


def test_strict_loading_names_the_key(saved, tmp_path):
    from safetensors.torch import load_file, save_file
    model_type, path, _ = saved
    import shutil
    broken = tmp_path / 'broken'
    shutil.copytree(path, broken)
    weights = load_file(str(broken / 'model.safetensors'))
    key = 'text_model.final_layer_norm.weight'
    weights[key] = torch.ones(7)
    save_file(weights, str(broken / 'model.safetensors'))
    with pytest.raises(ValueError, match='final_layer_norm'):
        build(model_type, str(broken))
    del weights[key]
    save_file(weights, str(broken / 'model.safetensors'))
    with pytest.raises(KeyError, match='final_layer_norm'):
        build(model_type, str(broken))


def test_activation_checkpointing_is_exact(saved):
    model_type, path, _ = saved
    grads = []
    for with_cp in (False, True):
        bb = build(model_type, path, with_cp=with_cp).train()
        torch.manual_seed(0)
        images = torch.rand(2, 3, 32, 32) * 255
        out = bb(images, TEXTS[:2])
        loss = out['visual_feats'].square().mean() + out['text_feats'].mean(
        ) + out['text_embeds'].square().mean()
        loss.backward()
        grads.append({
            n: p.grad.clone()
            for n, p in bb.named_parameters() if p.grad is not None
        })
    assert len(grads[0]) > 10 and grads[0].keys() == grads[1].keys()
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, atol=1e-6, rtol=1e-5)
