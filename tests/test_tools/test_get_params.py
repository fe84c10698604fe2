# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""tools/analysis_tools/get_params.py on RSRefSeg 2 configs.

The tiny RSRefSeg 2 of the ``rsrefseg2_setup`` fixture runs in the default
suite; the real-size counts of configs/rsrefseg2_rrsisd.py (SigLIP2
so400m-512 + SAM 2.1 Hiera-L, about 6 GB per model built) carry the
``realsize`` marker.
"""
import copy
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from mmseg.registry import MODELS

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / 'tools' / 'analysis_tools' / 'get_params.py'
#: Their PseudoSegHead's logit_scale1, logit_bias1, logit_bias2: loss
#: scalars without effect that the converter drops.
AUTHORS_ONLY = 3


def run(*args):
    """Run the tool; return its output; fail on error."""
    proc = subprocess.run([sys.executable, str(TOOL), *args],
                          cwd=REPO,
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT,
                          text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return proc.stdout


def rows(stdout):
    """Table rows: name -> the numbers on the line (1 or 2)."""
    table = {}
    for line in stdout.splitlines():
        cells = line[40:].split()
        if cells and all(c.replace(',', '').isdigit() for c in cells):
            table[line[:40].rstrip()] = tuple(
                int(c.replace(',', '')) for c in cells)
    return table


def unused_counts(stdout):
    """The ``+ path (n): no gradient`` lines: path -> n."""
    out = {}
    for line in stdout.splitlines():
        if line.startswith('  + ') and 'no gradient' in line:
            path, n = line[4:].split(' (', 1)
            out[path] = int(n.split(')')[0].replace(',', ''))
    return out


def test_tiny_rsrefseg2_counts_and_compare_authors(rsrefseg2_setup):
    stdout = run(rsrefseg2_setup.config_file, '--compare-authors')
    table = rows(stdout)
    model = MODELS.build(copy.deepcopy(rsrefseg2_setup.cfg.model))
    params = list(model.parameters())
    total, trainable = table['total']
    assert total == sum(p.numel() for p in params)
    assert trainable == sum(p.numel() for p in params if p.requires_grad)
    # the prompter is trained fully
    assert table['neck'][0] == table['neck'][1] > 0
    # other: SigLIP's logit scale and bias, SAM 2.1's no_mem_embed (32
    # channels), the InfoNCE temperature
    assert table['other'] == (35, 35)
    assert table['  decode_head.no_mem_embed'] == (32, 32)
    # the authors' count = ours + finetune_cfg.unused (no gradient)
    authors = table["authors' trainable count"][0]
    extra = unused_counts(stdout)
    assert set(extra) == {
        'backbone.model.vision_model.head',
        'decode_head.sam_prompt_encoder.point_embeddings',
        'decode_head.sam_prompt_encoder.not_a_point_embed',
        'decode_head.sam_prompt_encoder.no_mask_embed',
        'decode_head.sam_mask_decoder.iou_prediction_head',
        'decode_head.sam_mask_decoder.pred_obj_score_head'
    }
    assert authors == trainable + sum(extra.values())
    # ... = what their composition counts, less their 3 loss scalars
    built_total, built_trainable = table["authors' composition (built)"]
    assert built_total == total + AUTHORS_ONLY
    assert built_trainable == authors + AUTHORS_ONLY
    for key in ('logit_scale1', 'logit_bias1', 'logit_bias2'):
        assert f'  - decode_head.{key} (1): theirs only' in stdout
    assert 'trainable sets: identical' in stdout


def test_compare_names_every_difference(rsrefseg2_setup, capsys):
    tool = runpy.run_path(str(TOOL))
    cfg = copy.deepcopy(rsrefseg2_setup.cfg.model)
    cfg.finetune_cfg.unused = []  # as the authors leave them
    model = MODELS.build(cfg)
    ours = {
        n: tuple(p.shape)
        for n, p in model.named_parameters() if p.requires_grad
    }
    tool['compare_rsrefseg2_authors'](cfg.to_dict(), ours)
    assert 'trainable sets: identical' in capsys.readouterr().out
    del ours['neck.prompt_embed']
    ours['neck.extra'] = (1, )
    ours['neck.query_pos_embed1'] = (1, 2)
    with pytest.raises(SystemExit, match='differs from ours'):
        tool['compare_rsrefseg2_authors'](cfg.to_dict(), ours)
    out = capsys.readouterr().out
    assert '  trainable in theirs only: neck.prompt_embed' in out
    assert '  trainable in ours only: neck.extra' in out
    assert '  shapes differ: neck.query_pos_embed1' in out


@pytest.mark.realsize
def test_real_size_rsrefseg2_rrsisd():
    """configs/rsrefseg2_rrsisd.py: 1.447 B parameters; the authors' count
    equals their composition's (1,447,126,199 / 97,867,223, as
    tests/test_testing/test_authors_rsrefseg2.py counts it) less their 3
    loss scalars, and the trainable sets match parameter by parameter."""
    stdout = run('configs/rsrefseg2_rrsisd.py', '--compare-authors')
    table = rows(stdout)
    assert table['total'] == (1_447_126_196, 97_389_775)
    assert table["authors' trainable count"] == (97_867_223 - AUTHORS_ONLY, )
    assert table["authors' composition (built)"] == (1_447_126_199, 97_867_223)
    assert table['neck'] == (82_773_312, 82_773_312)
    assert 'trainable sets: identical (1,162 tensors' in stdout
