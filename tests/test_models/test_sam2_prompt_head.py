# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""SAM2PromptHead: parity with Meta's SAM2Base, presets, strict loading of
the official file and the HF directory, half precision, losses."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from mmrsrefseg.models import SAM2PromptHead
from mmrsrefseg.testing.authors_inputs import SAM_MEAN, SAM_STD, normalize
from mmrsrefseg.testing.authors_rsrefseg2 import (authors_sam2_masks,
                                                  tiny_sam2_cfg)
from mmrsrefseg.utils.checkpoint import StateDictError
from mmrsrefseg.utils.lora import inject_lora
from mmrsrefseg.utils.sam2_import import build_sam2_model, sam2_model_cfg

CFG = tiny_sam2_cfg()  # 128 px, width 32: embeddings 8x8, masks 32x32
# The authors' LoRA targets in SAM 2.1's image encoder.
LORA_TARGETS = (r'^(trunk\.blocks\.\d+\.attn\.(qkv|proj)|'
                r'neck\.convs\.\d+\.conv)$')


def tiny_head(**kwargs):
    return SAM2PromptHead(preset=None, sam2_cfg=copy.deepcopy(CFG), **kwargs)


def inputs(seed=0, batch=2):
    """RGB 0-255 images, 9 sparse prompts, a dense prompt (mask logits)."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, 3, 128, 128, generator=g) * 255,
            torch.randn(batch, 9, 32, generator=g),
            torch.randn(batch, 1, 32, 32, generator=g) * 4)


def predict(head, images, sparse, mask_prompt):
    return head(head.encode_image(images), sparse, mask_prompt)


def meta_masks(sam, images, sparse, mask_prompt):
    """The authors' RefSegSam on Meta's SAM2Base (images in [0, 255])."""
    assert sam.directly_add_no_mem_embed
    return authors_sam2_masks(sam, images / 255, sparse, mask_prompt)


@pytest.fixture(scope='module')
def sam2_file(tmp_path_factory, tiny_tools):
    """An official-format tiny SAM 2.1 file and Meta's model loaded from it
    with Meta's own (strict) loader."""
    from sam2.build_sam import _load_checkpoint
    path = tmp_path_factory.mktemp('sam2') / 'sam2.1_hiera_tiny_test.pt'
    tiny_tools.save_sam2(CFG, str(path), seed=0)
    sam = build_sam2_model(CFG)
    _load_checkpoint(sam, str(path))
    return str(path), sam


@pytest.fixture(scope='module')
def hf_dir(tmp_path_factory, tiny_tools):
    """An HF SAM 2.1 directory (Sam2Model.save_pretrained) and the model."""
    out = str(tmp_path_factory.mktemp('sam2_hf') / 'sam2.1-hiera-tiny-test')
    model = tiny_tools.save_hf_sam2(CFG, out, seed=1)
    return out, model


@torch.no_grad()
@pytest.mark.parametrize('with_mask', [True, False])
@pytest.mark.parametrize('mode', ['train', 'eval', 'eval-no-fallback'])
def test_parity_with_meta_sam2(sam2_file, with_mask, mode):
    path, sam = sam2_file
    sam = copy.deepcopy(sam)
    head = tiny_head(
        checkpoint=path, dynamic_multimask=mode != 'eval-no-fallback')
    head.init_weights()
    sam.train(mode == 'train')
    head.train(mode == 'train')
    sam.sam_mask_decoder.dynamic_multimask_via_stability = (
        mode != 'eval-no-fallback')
    images, sparse, prompt = inputs()
    prompt = prompt if with_mask else None
    feats = head.encode_image(images)
    ref_feats, expected = meta_masks(sam, images, sparse, prompt)
    assert tuple(feats['image_embeddings'].shape) == (2, 32, 8, 8)
    assert [tuple(f.shape)
            for f in feats['high_res_features']] == [(2, 4, 32, 32),
                                                     (2, 8, 16, 16)]
    torch.testing.assert_close(
        feats['image_embeddings'], ref_feats[-1], atol=1e-5, rtol=0)
    for ours, ref in zip(feats['high_res_features'], ref_feats[:-1]):
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    masks = head(feats, sparse, prompt)
    assert masks.shape == (2, 1, 32, 32)
    assert expected.abs().max() > 0.1  # real numbers, not all zero
    torch.testing.assert_close(masks, expected, atol=1e-5, rtol=0)


@torch.no_grad()
def test_dynamic_multimask_fallback(sam2_file):
    """Eval: token 0 where stable, else the multimask output of highest
    predicted IoU (SAM 2.1's image predictor); train: always token 0."""
    path, _ = sam2_file
    head = tiny_head(checkpoint=path)
    head.init_weights()
    images, sparse, prompt = inputs()
    feats = head.encode_image(images)
    decoder = head.sam_mask_decoder
    all_masks, iou, _, _ = decoder.predict_masks(
        image_embeddings=feats['image_embeddings'],
        image_pe=head.dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=head.sam_prompt_encoder(None, None, prompt)[1],
        repeat_image=False,
        high_res_features=feats['high_res_features'])
    head.train()
    torch.testing.assert_close(head(feats, sparse, prompt), all_masks[:, :1])
    head.eval()
    stability = decoder._get_stability_scores(all_masks[:, 0])
    assert (stability < 0.98).all()  # random weights: unstable token 0
    best = iou[:, 1:].argmax(1) + 1
    got = head(feats, sparse, prompt)
    for i in range(2):
        torch.testing.assert_close(got[i, 0], all_masks[i, best[i]])
        assert (got[i, 0] - all_masks[i, 0]).abs().max() > 0.1
    # a confident token 0 (logits x1000: almost no pixel within +-0.05)
    # is kept
    decoder.output_hypernetworks_mlps[0].layers[-1].weight.mul_(1000)
    decoder.output_hypernetworks_mlps[0].layers[-1].bias.mul_(1000)
    all_masks = head.train()(feats, sparse, prompt)
    assert (decoder._get_stability_scores(all_masks) >= 0.98).all()
    torch.testing.assert_close(head.eval()(feats, sparse, prompt), all_masks)
    # the switch
    plain = tiny_head(checkpoint=path, dynamic_multimask=False)
    assert not plain.sam_mask_decoder.dynamic_multimask_via_stability
    assert decoder.dynamic_multimask_via_stability
    assert (decoder.dynamic_multimask_stability_delta,
            decoder.dynamic_multimask_stability_thresh) == (0.05, 0.98)


@pytest.mark.parametrize('preset', ['tiny', 'large'])
def test_presets_equal_meta_configs(preset):
    head = SAM2PromptHead(preset=preset)
    ref = build_sam2_model(sam2_model_cfg(preset))
    ref_shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    ours = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert ours == {
        k: s
        for k, s in ref_shapes.items()
        if k.split('.')[0] in ('image_encoder', 'sam_prompt_encoder',
                               'sam_mask_decoder', 'no_mem_embed')
    }
    assert {**ours, **head.unused_sam2_shapes} == ref_shapes
    assert any(
        k.startswith('memory_attention.') for k in head.unused_sam2_shapes)
    params = sum(p.numel() for p in head.parameters())
    assert params == {'tiny': 31_440_721, 'large': 216_924_865}[preset]
    assert sum(p.numel() for p in ref.parameters()) - params == 7_521_777
    assert head.image_size == 1024
    assert head.image_embedding_size == (64, 64)
    assert head.mask_prompt_size == (256, 256)
    assert head.prompt_channels == 256
    decoder = head.sam_mask_decoder
    assert decoder.use_high_res_features and decoder.pred_obj_scores
    assert decoder.dynamic_multimask_via_stability
    assert head.image_encoder.scalp == 1
    # the trunk of the preset
    assert len(head.image_encoder.trunk.blocks) == {
        'tiny': 12,
        'large': 48
    }[preset]


def test_preset_or_config():
    with pytest.raises(ValueError, match='exactly one'):
        SAM2PromptHead(preset='tiny', sam2_cfg=CFG)
    with pytest.raises(ValueError, match='exactly one'):
        SAM2PromptHead(preset=None)
    with pytest.raises(KeyError, match='huge'):
        SAM2PromptHead(preset='huge')
    cfg = copy.deepcopy(CFG)
    cfg['use_high_res_features_in_sam'] = False
    with pytest.raises(ValueError, match='use_high_res_features_in_sam'):
        SAM2PromptHead(preset=None, sam2_cfg=cfg)


def test_registered_and_built_from_config():
    init_default_scope('mmseg')
    head = MODELS.build(dict(type='SAM2PromptHead', preset=None, sam2_cfg=CFG))
    assert isinstance(head, SAM2PromptHead)
    assert [type(m).__name__
            for m in head.loss_decode] == ['CrossEntropyLoss', 'DiceLoss']
    assert [m.loss_name for m in head.loss_decode] == ['loss_bce', 'loss_dice']
    assert [m.loss_weight for m in head.loss_decode] == [5.0, 5.0]
    assert not hasattr(head, 'conv_seg')


def test_official_file_loads_strictly(sam2_file):
    path, sam = sam2_file
    head = tiny_head(checkpoint=path)
    assert head.pretrained_source == path
    state = head.read_pretrained()
    assert sorted(state) == sorted(head.state_dict())
    head.init_weights()
    assert head.is_init
    ref = sam.state_dict()
    for k, v in head.state_dict().items():
        torch.testing.assert_close(v, ref[k], atol=0, rtol=0, msg=k)
    # LoRA-wrapped layers (the authors' targets) load as base_layer
    lora = tiny_head(checkpoint=path)
    inject_lora(lora.image_encoder, LORA_TARGETS, rank=2, alpha=2, dropout=0)
    state = lora.read_pretrained()
    own = [k for k in lora.state_dict() if 'lora_' not in k]
    assert sorted(state) == sorted(own)
    assert 'image_encoder.neck.convs.0.conv.base_layer.weight' in state
    assert 'image_encoder.trunk.blocks.0.attn.qkv.base_layer.weight' in state
    lora.init_weights()
    head.eval()
    lora.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            predict(lora, *inputs()), predict(head, *inputs()))


def _save(tmp_path, name, model_state):
    path = tmp_path / name
    torch.save({'model': model_state}, path)
    return str(path)


@pytest.mark.parametrize(
    'change,match',
    [
        (lambda s: s.pop('image_encoder.trunk.blocks.0.attn.qkv.weight'),
         r'missing keys \(1\): image_encoder\.trunk\.blocks\.0\.attn\.qkv'),
        (lambda s: s.pop('no_mem_embed'), r'missing keys \(1\): no_mem_embed'),
        # a memory key is as required as an encoder key
        (lambda s: s.pop('memory_attention.norm.weight'),
         r'missing keys \(1\): memory_attention\.norm\.weight'),
        (lambda s: s.update({'image_encoder.extra': torch.zeros(1)}),
         r'unexpected keys \(1\): image_encoder\.extra'),
        (lambda s: s.update({'extra_module.weight': torch.zeros(1)}),
         r'unexpected keys \(1\): extra_module\.weight'),
        (lambda s: s.update(
            {'sam_mask_decoder.iou_token.weight': torch.zeros(1, 8)}),
         r'mis-shaped keys \(1\): sam_mask_decoder\.iou_token\.weight '
         r'\(checkpoint \(1, 8\), model \(1, 32\)\)'),
        (lambda s: s.update({'maskmem_tpos_enc': torch.zeros(1)}),
         r'mis-shaped keys \(1\): maskmem_tpos_enc'),
    ])
def test_official_file_errors(sam2_file, tmp_path, change, match):
    path, _ = sam2_file
    state = torch.load(path, weights_only=True)['model']
    change(state)
    bad = _save(tmp_path, 'bad.pt', state)
    head = tiny_head(checkpoint=bad)
    with pytest.raises(StateDictError, match=match) as info:
        head.init_weights()
    assert bad in str(info.value)
    assert not head.is_init


def test_official_file_format_errors(sam2_file, tmp_path):
    path, _ = sam2_file
    bare = tmp_path / 'bare.pt'
    torch.save(torch.load(path, weights_only=True)['model'], bare)
    with pytest.raises(ValueError, match=f"{bare}.*no 'model'"):
        tiny_head(checkpoint=str(bare)).init_weights()
    with pytest.raises(FileNotFoundError, match='nowhere.pt'):
        tiny_head(checkpoint=str(tmp_path / 'nowhere.pt')).init_weights()
    text = tmp_path / 'text.pt'
    text.write_text('not a checkpoint')
    with pytest.raises(ValueError, match='text.pt'):
        tiny_head(checkpoint=str(text)).init_weights()
    with pytest.raises(ValueError, match='no `checkpoint`'):
        tiny_head().read_pretrained()


@torch.no_grad()
@pytest.mark.parametrize('mode', ['train', 'eval'])
def test_hf_directory_equals_hf_model(hf_dir, mode):
    """Image embeddings and masks equal transformers' own Sam2Model modules
    (get_image_embeddings, prompt encoder, mask decoder)."""
    path, hf = hf_dir
    head = tiny_head(checkpoint=path)
    assert sorted(head.read_pretrained()) == sorted(head.state_dict())
    head.init_weights()
    hf.train(mode == 'train')
    head.train(mode == 'train')
    images, sparse, prompt = inputs(seed=3)
    feats = head.encode_image(images)
    expected = hf.get_image_embeddings(
        normalize(images / 255, SAM_MEAN, SAM_STD))
    torch.testing.assert_close(
        feats['image_embeddings'], expected[-1], atol=1e-5, rtol=0)
    for ours, ref in zip(feats['high_res_features'], expected[:-1]):
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    for mask_prompt in (prompt, None):
        _, dense = hf.prompt_encoder(
            input_points=None,
            input_labels=None,
            input_boxes=None,
            input_masks=mask_prompt)
        ref = hf.mask_decoder(
            image_embeddings=expected[-1],
            image_positional_embeddings=hf.
            get_image_wide_positional_embeddings().repeat(2, 1, 1, 1),
            sparse_prompt_embeddings=sparse[:, None],
            dense_prompt_embeddings=dense,
            multimask_output=False,
            high_resolution_features=expected[:-1])[0][:, 0]
        got = head(feats, sparse, mask_prompt)
        # the HF tiny model's logits are small: compare relative to them
        scale = ref.abs().max()
        assert scale > 0
        torch.testing.assert_close(got / scale, ref / scale, atol=1e-5, rtol=0)


@torch.no_grad()
def test_hf_directory_equals_official_file_of_the_same_weights(
        hf_dir, tmp_path):
    """HF -> Meta renaming, checked against Meta's model: write the loaded
    weights as an official file (memory modules from a random SAM2Base)."""
    path, _ = hf_dir
    head = tiny_head(checkpoint=path)
    head.init_weights()
    sam = build_sam2_model(CFG)
    sam.load_state_dict(head.state_dict(), strict=False)
    file = _save(tmp_path, 'same.pt', sam.state_dict())
    from_file = tiny_head(checkpoint=file)
    from_file.init_weights()
    for k, v in from_file.state_dict().items():
        torch.testing.assert_close(v, head.state_dict()[k], msg=k)
    sam.eval()
    head.eval()
    images, sparse, prompt = inputs(seed=4)
    _, expected = meta_masks(sam, images, sparse, prompt)
    torch.testing.assert_close(
        predict(head, images, sparse, prompt), expected, atol=1e-5, rtol=0)


def test_hf_directory_errors(hf_dir, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file
    path, _ = hf_dir
    # a weight deleted from the directory
    missing = str(tmp_path / 'missing')
    shutil.copytree(path, missing)
    weights = load_file(f'{missing}/model.safetensors')
    weights.pop('mask_decoder.conv_s0.weight')
    save_file(weights, f'{missing}/model.safetensors', {'format': 'pt'})
    with pytest.raises(
            StateDictError,
            match='missing keys \\(1\\): mask_decoder.conv_s0.weight'):
        tiny_head(checkpoint=missing).init_weights()
    # a config.json that is not JSON, or not a SAM 2's
    bad = str(tmp_path / 'bad')
    shutil.copytree(path, bad)
    with open(f'{bad}/config.json', 'w') as f:
        f.write('{"model_type": "sam2",\n oops}')
    with pytest.raises(ValueError, match=r'bad/config.json.*line 2'):
        tiny_head(checkpoint=bad).init_weights()
    with open(f'{bad}/config.json', 'w') as f:
        f.write('{"model_type": "sam"}')
    with pytest.raises(
            ValueError, match=r"bad/config.json: model_type is 'sam'"):
        tiny_head(checkpoint=bad).init_weights()
    # an architecture other than the head's
    other = str(tmp_path / 'other')
    shutil.copytree(path, other)
    weights = load_file(f'{other}/model.safetensors')
    weights['extra.weight'] = torch.zeros(1)
    save_file(weights, f'{other}/model.safetensors', {'format': 'pt'})
    with pytest.raises(StateDictError, match='extra.weight'):
        tiny_head(checkpoint=other).init_weights()


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_precision(sam2_file, dtype):
    """Module and inputs cast to fp16/bf16 (no autocast), forward and
    backward of the losses on CPU; close to float32."""
    path, _ = sam2_file
    head = tiny_head(checkpoint=path)
    head.init_weights()
    images, sparse, prompt = inputs()
    with torch.no_grad():
        expected = predict(head, images, sparse, prompt)
    head.to(dtype)
    # Meta's sam2 alone fails or leaves float32 here (what the head fixes)
    with pytest.raises(RuntimeError, match='dtype'):
        head.sam_prompt_encoder.get_dense_pe()
    x = ((images - head.pixel_mean) / head.pixel_std).to(dtype)
    assert head.image_encoder(x)['backbone_fpn'][-1].dtype == torch.float32
    sparse = sparse.to(dtype).requires_grad_()
    prompt = prompt.to(dtype).requires_grad_()
    feats = head.encode_image(images.to(dtype))
    assert feats['image_embeddings'].dtype == dtype
    assert all(f.dtype == dtype for f in feats['high_res_features'])
    masks = head(feats, sparse, prompt)
    assert masks.dtype == dtype
    tol = {torch.float16: 0.01, torch.bfloat16: 0.05}[dtype]
    assert (masks.float() - expected).abs().max() < tol * expected.abs().max()
    label = (torch.rand(2, 1, 128, 128) > 0.5).long()
    losses = head.loss_by_feat(masks, data_samples(label))
    total = losses['loss_bce'] + losses['loss_dice']
    assert torch.isfinite(total)  # float32: mmseg's losses take float targets
    total.backward()
    assert sparse.grad.dtype == dtype and prompt.grad.dtype == dtype
    grads = [p.grad for p in head.parameters() if p.grad is not None]
    assert len(grads) > 100
    assert all(g.dtype == dtype and torch.isfinite(g).all() for g in grads)


def test_activation_checkpointing_is_exact(sam2_file):
    path, _ = sam2_file
    outs = []
    for with_cp in (False, True):
        head = tiny_head(checkpoint=path, with_cp=with_cp)
        head.init_weights()
        out = predict(head, *inputs())
        out.square().mean().backward()
        outs.append(
            (out, head.image_encoder.trunk.blocks[0].attn.qkv.weight.grad,
             head.image_encoder.neck.convs[0].conv.weight.grad))
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b)


def test_input_checks():
    head = tiny_head()
    with pytest.raises(ValueError, match='128x128'):
        head.encode_image(torch.zeros(1, 3, 64, 64))
    images, sparse, prompt = inputs()
    feats = head.encode_image(images)
    with pytest.raises(ValueError, match=r'\(2, 1, 32, 32\)'):
        head(feats, sparse, prompt[:, :, :16, :16])


def test_parameters_without_gradient(sam2_file):
    """What a training step of RSRefSeg 2 (dense prompt given, train mode)
    leaves without gradient: the point/box and no-mask embeddings, the IoU
    and object-score heads (None); the hypernetworks of the three multimask
    tokens (computed, then sliced away: zero)."""
    path, _ = sam2_file
    head = tiny_head(checkpoint=path)
    head.init_weights()
    images, sparse, prompt = inputs()
    predict(head, images, sparse, prompt).square().mean().backward()
    none = {n for n, p in head.named_parameters() if p.grad is None}
    zero = {
        n
        for n, p in head.named_parameters()
        if p.grad is not None and not p.grad.any()
    }
    prefixes = ('sam_prompt_encoder.point_embeddings.',
                'sam_prompt_encoder.not_a_point_embed.',
                'sam_prompt_encoder.no_mask_embed.',
                'sam_mask_decoder.iou_prediction_head.',
                'sam_mask_decoder.pred_obj_score_head.')
    assert none == {
        n
        for n, _ in head.named_parameters() if n.startswith(prefixes)
    }
    assert len(none) == 18
    assert zero == {
        n
        for n, _ in head.named_parameters() if n.startswith(
            tuple(f'sam_mask_decoder.output_hypernetworks_mlps.{i}.'
                  for i in (1, 2, 3)))
    }
    assert head.no_mem_embed.grad.any()
    assert head.sam_mask_decoder.conv_s0.weight.grad.any()


def data_samples(label):
    samples = []
    for lab in label:
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=lab)
        samples.append(sample)
    return samples


def test_default_losses_are_the_authors():
    """BCE x5 (mean over all pixels, 255 ignored) + Dice x5 (V-Net form over
    the valid pixels), on logits upsampled to the label size."""
    head = tiny_head()
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, 16, 16, generator=g) * 3
    label = (torch.rand(2, 1, 32, 32, generator=g) > 0.6).long()
    label[1, :, :, 24:] = 255
    losses = head.loss_by_feat(logits, data_samples(label))
    up = F.interpolate(
        logits, size=(32, 32), mode='bilinear', align_corners=False)
    valid = label != 255
    target = ((label == 1) & valid).float()
    bce = F.binary_cross_entropy_with_logits(up, target, reduction='none')
    torch.testing.assert_close(losses['loss_bce'],
                               5 * (bce * valid).sum() / valid.numel())
    dice = []
    for i in range(2):
        p, t = up[i][valid[i]].sigmoid(), target[i][valid[i]]
        dice.append(1 - 2 * (p * t).sum() / ((p * p).sum() + 1e-3 +
                                             (t * t).sum() + 1e-3))
    torch.testing.assert_close(losses['loss_dice'],
                               5 * torch.stack(dice).mean())
    pred = up.sigmoid() > 0.5
    acc = ((pred == target.bool()) & valid).sum() * 100. / valid.sum()
    torch.testing.assert_close(losses['acc_seg'], acc.float())
    out = head.predict_by_feat(logits, [dict(img_shape=(32, 32))])
    torch.testing.assert_close(out, up)
