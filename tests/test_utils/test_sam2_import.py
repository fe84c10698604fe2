# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Meta's SAM 2.1 built from its packaged configs, offline, no torchvision."""
import importlib
import sys

import pytest
import torch

from mmrsrefseg.testing.authors_rsrefseg2 import tiny_sam2_cfg
from mmrsrefseg.utils import sam2_import
from mmrsrefseg.utils.sam2_import import (SAM2_PRESETS, build_sam2_model,
                                          sam2_model_cfg)


def test_sam2_model_code_needs_no_torchvision():
    import sam2.modeling.sam2_base  # noqa: F401
    assert 'torchvision' not in sys.modules


@pytest.mark.parametrize('preset,embed_dim,stages', [
    ('tiny', 96, [1, 2, 7, 2]),
    ('small', 96, [1, 2, 11, 2]),
    ('base_plus', 112, [2, 3, 16, 3]),
    ('large', 144, [2, 6, 36, 4]),
])
def test_presets_are_meta_sam2_1_configs(preset, embed_dim, stages):
    import inspect

    from sam2.modeling.backbones.hieradet import Hiera
    cfg = sam2_model_cfg(preset)
    trunk = cfg['image_encoder']['trunk']
    default = inspect.signature(Hiera).parameters['stages'].default
    assert trunk['embed_dim'] == embed_dim
    assert list(trunk.get('stages', default)) == stages  # B+: the default
    assert cfg['_target_'] == 'sam2.modeling.sam2_base.SAM2Base'
    assert cfg['image_size'] == 1024 and cfg['image_encoder']['scalp'] == 1
    assert cfg['use_high_res_features_in_sam'] and cfg[
        'directly_add_no_mem_embed']
    assert cfg['sam_mask_decoder_extra_args'] == dict(
        dynamic_multimask_via_stability=True,
        dynamic_multimask_stability_delta=0.05,
        dynamic_multimask_stability_thresh=0.98)
    assert 'sam_mask_decoder_extra_args' not in sam2_model_cfg(
        preset, image_predictor=False)


def test_unknown_preset_raises():
    with pytest.raises(KeyError, match='huge'):
        sam2_model_cfg('huge')
    assert sorted(SAM2_PRESETS) == ['base_plus', 'large', 'small', 'tiny']


def test_missing_sam2_gives_the_install_command(monkeypatch):
    real = importlib.import_module

    def fake(name, *args, **kwargs):
        if name == 'sam2':
            raise ImportError('No module named sam2')
        return real(name, *args, **kwargs)

    monkeypatch.setattr(sam2_import.importlib, 'import_module', fake)
    with pytest.raises(ImportError, match='--no-deps.*sam2==1.1.0'):
        sam2_import.import_sam2()


def test_tiny_model_builds_and_gives_three_levels():
    cfg = tiny_sam2_cfg()
    model = build_sam2_model(cfg).eval()
    assert model.sam_mask_decoder.dynamic_multimask_via_stability
    assert model.sam_prompt_encoder.mask_input_size == (32, 32)
    with torch.no_grad():
        out = model.forward_image(torch.rand(2, 3, 128, 128))
        _, feats, _, sizes = model._prepare_backbone_features(out)
    assert sizes == [(32, 32), (16, 16), (8, 8)]
    # conv_s0 / conv_s1 already applied to the two high-resolution levels
    assert [tuple(f.shape) for f in feats] == [(1024, 2, 4), (256, 2, 8),
                                               (64, 2, 32)]
    # the config dict is not consumed
    assert build_sam2_model(cfg).image_size == 128
