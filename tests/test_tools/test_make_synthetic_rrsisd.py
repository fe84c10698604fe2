"""Tests of tools/dataset_converters/make_synthetic_rrsisd.py.

The generator is run as a script (``subprocess``) into ``tmp_path``; its
output is checked against the real RRSIS-D sample's record structure and with
an independent reading of the files: masks decoded with pycocotools, colours
measured in the JPEG, expressions parsed and resolved against the masks.
"""
import colorsys
import json
import pickle
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

REPO = Path(__file__).parents[2]
SCRIPT = REPO / 'tools' / 'dataset_converters' / 'make_synthetic_rrsisd.py'
SAMPLE = REPO.parent / 'shared' / 'data' / 'rrsisd_sample'

# written out by hand from the real RRSIS-D instances.json
REAL_CATEGORIES = [
    'Expressway-Service-area', 'Expressway-toll-station', 'airplane',
    'airport', 'baseballfield', 'basketballcourt', 'bridge', 'chimney', 'dam',
    'golffield', 'groundtrackfield', 'harbor', 'overpass', 'ship', 'stadium',
    'storagetank', 'tenniscourt', 'trainstation', 'vehicle', 'windmill'
]
PHRASE_TO_CATEGORY = {
    'storage tank': 15,
    'vehicle': 18,
    'tennis court': 16,
    'ship': 13,
    'airplane': 2,
    'windmill': 19,
}
EXPRESSION = re.compile(
    r'^(?:the|a) (?:(?P<size>larger|smaller|largest|smallest) )?'
    r'(?:(?P<colour>red|green|blue|white|yellow) )?'
    r'(?P<category>storage tank|vehicle|tennis court|ship|airplane|windmill)'
    r'(?: (?P<position>on the left|on the right|at the top|at the bottom))?$',
    re.IGNORECASE)
ARGS = ['--num-train', '6', '--num-val', '2', '--num-test', '5']
SIZE = 128


def run_script(out_dir, *extra):
    """Run the generator; return the completed process."""
    return subprocess.run(
        [sys.executable, str(SCRIPT),
         str(out_dir), *extra],
        capture_output=True,
        text=True,
        timeout=120)


def load(out_dir):
    """(instances, refs) of a generated dataset."""
    with open(out_dir / 'rrsisd' / 'instances.json') as f:
        instances = json.load(f)
    with open(out_dir / 'rrsisd' / 'refs(unc).p', 'rb') as f:
        refs = pickle.load(f)
    return instances, refs


def decode(ann):
    seg = ann['segmentation'][0]
    return mask_utils.decode({
        'size': seg['size'],
        'counts': seg['counts'].encode('ascii')
    })


def colour_name(rgb):
    """Independent colour reading from an (r, g, b) median, 0-255."""
    h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))
    hue = 360 * h
    if s < 0.2 and v > 0.5:
        return 'white'
    if s < 0.3:
        return None
    if hue < 20 or hue > 340:
        return 'red'
    if 40 <= hue <= 70:
        return 'yellow'
    if 90 <= hue <= 160:
        return 'green'
    if 200 <= hue <= 250:
        return 'blue'
    return None


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp('synth') / 'seed3'
    proc = run_script(out, *ARGS, '--img-size', str(SIZE), '--seed', '3',
                      '--jsonl')
    assert proc.returncode == 0, proc.stderr
    return out, proc.stdout


@pytest.fixture(scope='module')
def objects(dataset):
    """Per image id: list of dicts (ann, mask, colour, ref) of its objects."""
    out, _ = dataset
    instances, refs = load(out)
    images = {im['id']: im for im in instances['images']}
    by_ann = {r['ann_id']: r for r in refs if r['split'] != 'control'}
    per_image = defaultdict(list)
    for ann in instances['annotations']:
        mask = decode(ann)
        jpg = images[ann['image_id']]['file_name']
        pixels = np.asarray(
            Image.open(out / 'images' / 'rrsisd' / 'JPEGImages' / jpg))
        inner = mask.astype(bool)
        # stay off the JPEG-blurred border when the object is big enough
        core = inner & np.roll(inner, 1, 0) & np.roll(inner, -1, 0) & \
            np.roll(inner, 1, 1) & np.roll(inner, -1, 1)
        sel = core if core.sum() >= 10 else inner
        rgb = np.median(pixels[sel], axis=0)
        ys, xs = np.nonzero(mask)
        per_image[ann['image_id']].append(
            dict(
                ann=ann,
                mask=mask,
                colour=colour_name(rgb),
                centroid=(xs.mean(), ys.mean()),
                ref=by_ann[ann['id']]))
    return per_image


def test_help_and_bad_arguments(tmp_path):
    proc = run_script('--help')
    assert proc.returncode == 0
    assert '--objects-per-image' in proc.stdout
    assert '--jsonl' in proc.stdout
    proc = run_script(tmp_path / 'x', '--objects-per-image', '1', '3')
    assert proc.returncode == 2
    assert '--objects-per-image' in proc.stderr and '1 3' in proc.stderr
    proc = run_script(tmp_path / 'y', '--img-size', '32')
    assert proc.returncode == 2 and '--img-size' in proc.stderr


def test_layout_and_summary(dataset):
    out, stdout = dataset
    assert (out / 'rrsisd' / 'refs(unc).p').is_file()
    assert (out / 'rrsisd' / 'instances.json').is_file()
    jpgs = sorted((out / 'images' / 'rrsisd' / 'JPEGImages').iterdir())
    assert [p.name for p in jpgs] == [f'{i:05d}.jpg' for i in range(1, 14)]
    for split in ('train', 'val', 'test', 'control'):
        assert (out / 'datainfo' / f'rrsisd_{split}.jsonl').is_file()
    instances, refs = load(out)
    assert len(instances['images']) == 13
    n_refs = {
        s: sum(r['split'] == s for r in refs)
        for s in ('train', 'val', 'test', 'control')
    }
    for split, n_img in (('train', 6), ('val', 2), ('test', 5)):
        assert 2 * n_img <= n_refs[split] <= 4 * n_img
        assert re.search(rf'{split} +images +{n_img} +refs +{n_refs[split]}',
                         stdout)
    assert n_refs['control'] == n_refs['test']
    assert len(refs) == sum(n_refs.values())
    assert 'objects per category' in stdout


def test_categories_are_the_real_ones(dataset):
    instances, _ = load(dataset[0])
    assert instances['categories'] == [
        dict(name=n, id=i) for i, n in enumerate(REAL_CATEGORIES)
    ]


def _signature(value):
    """Nested key order and value types of a record."""
    if isinstance(value, dict):
        return {k: _signature(v) for k, v in value.items()}
    if isinstance(value, list):
        return ['list', _signature(value[0]) if value else None]
    return type(value).__name__


def test_structure_matches_real_sample(dataset):
    if not SAMPLE.is_dir():
        pytest.skip(f'real RRSIS-D sample not found at {SAMPLE}')
    out = dataset[0]
    real_inst, real_refs = load(SAMPLE)
    inst, refs = load(out)
    assert list(inst) == list(real_inst)
    assert inst['categories'] == real_inst['categories']
    for key in ('images', 'annotations'):
        expected = _signature(real_inst[key][0])
        for record in inst[key]:
            assert _signature(record) == expected, key
    for ref in refs:
        assert _signature(ref) == _signature(real_refs[0])
    with open(SAMPLE / 'rrsisd_test.jsonl') as f:
        real_line = json.loads(f.readline())
    for split in ('train', 'val', 'test', 'control'):
        with open(out / 'datainfo' / f'rrsisd_{split}.jsonl') as f:
            lines = [json.loads(line) for line in f]
        assert len(lines) == sum(r['split'] == split for r in refs)
        for line in lines:
            assert _signature(line) == _signature(real_line)


def test_refs_are_consistent(dataset):
    inst, refs = load(dataset[0])
    anns = {a['id']: a for a in inst['annotations']}
    images = {im['id']: im for im in inst['images']}
    assert len(anns) == len(inst['annotations'])
    assert len({r['ref_id'] for r in refs}) == len(refs)
    sent_ids = [s['sent_id'] for r in refs for s in r['sentences']]
    assert len(set(sent_ids)) == len(sent_ids) == len(refs)
    targets = [r['ann_id'] for r in refs if r['split'] != 'control']
    # one expression per object, as in RRSIS-D
    assert sorted(targets) == sorted(anns)
    for ref in refs:
        ann = anns[ref['ann_id']]
        assert ref['image_id'] == ann['image_id']
        assert ref['file_name'] == images[ref['image_id']]['file_name']
        assert ref['category_id'] == ann['categories_id']
        (sent, ) = ref['sentences']
        assert ref['sent_ids'] == [sent['sent_id']]
        assert sent['raw'] == sent['sent']
        assert sent['tokens'] == sent['sent'].split()
    splits_of_image = defaultdict(set)
    for ref in refs:
        splits_of_image[ref['image_id']].add(ref['split'])
    for image_id, splits in splits_of_image.items():
        assert splits in ({'train'}, {'val'}, {'test', 'control'}), image_id


def test_masks_rle_area_bbox_and_image_size(dataset):
    out = dataset[0]
    inst, _ = load(out)
    images = {im['id']: im for im in inst['images']}
    masks = defaultdict(list)
    for ann in inst['annotations']:
        im = images[ann['image_id']]
        with Image.open(out / 'images' / 'rrsisd' / 'JPEGImages' /
                        im['file_name']) as jpg:
            assert jpg.format == 'JPEG' and jpg.mode == 'RGB'
            assert jpg.size == (im['width'], im['height']) == (SIZE, SIZE)
        assert ann['segmentation'][0]['size'] == [SIZE, SIZE]
        mask = decode(ann)
        assert mask.shape == (SIZE, SIZE)
        assert int(mask.sum()) == ann['area']
        ys, xs = np.nonzero(mask)
        assert ann['bbox'] == [xs.min(), ys.min(), xs.max(), ys.max()]
        # >= 7 px on a 128-pixel image (14 px on 256)
        assert max(xs.max() - xs.min(), ys.max() - ys.min()) + 1 >= 7
        masks[ann['image_id']].append(mask)
    for image_id, ms in masks.items():
        assert 2 <= len(ms) <= 4
        # objects never overlap: the control split's target is disjoint
        # from the object its expression names
        assert np.stack(ms).sum(0).max() == 1, image_id


def test_expressions_unique_and_resolvable(objects):
    """Parse each expression and resolve it with the files' own evidence.

    Category from the annotation, colour measured in the JPEG, size from the
    mask area, position from the mask centroid: the expression must pick
    exactly its own object, and use no modifier when the category alone
    is unique.
    """
    used = set()
    for image_id, objs in objects.items():
        # every object's colour is readable from the JPEG
        assert all(o['colour'] for o in objs), image_id
        sents = [o['ref']['sentences'][0]['sent'] for o in objs]
        assert len(set(sents)) == len(sents), sents
        for obj, sent in zip(objs, sents):
            match = EXPRESSION.match(sent)
            assert match, sent
            cat = PHRASE_TO_CATEGORY[match['category']]
            assert cat == obj['ann']['categories_id'], sent
            group = [o for o in objs if o['ann']['categories_id'] == cat]
            if len(group) == 1:
                assert sent.split()[1:] == match['category'].split(), sent
            if match['colour']:
                assert obj['colour'] == match['colour'], (sent, image_id)
                group = [o for o in group if o['colour'] == match['colour']]
            others = [o for o in group if o is not obj]
            area = obj['ann']['area']
            if match['size']:
                word = match['size']
                if word in ('larger', 'smaller'):
                    assert len(others) == 1, sent
                else:
                    assert len(others) >= 2, sent
                if word.startswith('larg'):
                    assert all(area > 1.5 * o['ann']['area'] for o in others)
                else:
                    assert all(1.5 * area < o['ann']['area'] for o in others)
                others = []
            if match['position']:
                key = match['position'].split()[-1]
                axis = 0 if key in ('left', 'right') else 1
                sign = 1 if key in ('left', 'top') else -1
                mine = obj['centroid'][axis]
                assert all(sign * (o['centroid'][axis] - mine) > 0.1 * SIZE
                           for o in others), sent
                assert sign * (SIZE / 2 - mine) > 0, sent
                others = []
            assert others == [], sent
            used.add(
                tuple(k for k in ('colour', 'size', 'position') if match[k]))
    # several templates occur even in this tiny run
    assert len(used) >= 3, used


def test_control_refs(dataset):
    inst, refs = load(dataset[0])
    test = [r for r in refs if r['split'] == 'test']
    control = [r for r in refs if r['split'] == 'control']
    assert sorted(r['ann_id'] for r in control) == sorted(r['ann_id']
                                                          for r in test)
    test_ids = {r['ref_id'] for r in test}
    by_image = defaultdict(dict)
    for ref in test:
        by_image[ref['image_id']][ref['sentences'][0]['sent']] = ref['ann_id']
    for ref in control:
        assert ref['ref_id'] not in test_ids
        sent = ref['sentences'][0]['sent']
        # another object's expression on the same image, same mask kept
        assert sent in by_image[ref['image_id']]
        assert by_image[ref['image_id']][sent] != ref['ann_id']
    # a perfect text-following model: IoU 0 on control (disjoint masks,
    # checked above); a text-blind "segment every object" model: oIoU
    # sum(target) / sum(all objects of the image) per ref, equal on both
    areas = defaultdict(int)
    anns = {a['id']: a for a in inst['annotations']}
    for ann in inst['annotations']:
        areas[ann['image_id']] += ann['area']
    blind = {
        name:
        sum(anns[r['ann_id']]['area'] for r in rs) / sum(areas[r['image_id']]
                                                         for r in rs)
        for name, rs in (('test', test), ('control', control))
    }
    assert blind['test'] == blind['control'] < 0.5


def test_baselines_and_shared_categories(tmp_path):
    """On a larger run the text is needed: text-blind oIoU << 50.

    Two reference predictors are recomputed from the files and compared with
    the printed summary: "every object of the image" (text-blind) and "every
    object of the category named in the expression" (category word only).
    """
    out = tmp_path / 'big'
    proc = run_script(out, '--num-train', '0', '--num-val', '0', '--num-test',
                      '60', '--img-size', '96', '--seed', '1')
    assert proc.returncode == 0, proc.stderr
    inst, refs = load(out)
    anns = {a['id']: a for a in inst['annotations']}
    per_image = defaultdict(list)
    for ann in inst['annotations']:
        per_image[ann['image_id']].append(ann)
    oiou = {}
    for split in ('test', 'control'):
        sums = dict(blind=[0, 0], category=[0, 0])
        for ref in (r for r in refs if r['split'] == split):
            target = anns[ref['ann_id']]
            objs = per_image[ref['image_id']]
            sums['blind'][0] += target['area']
            sums['blind'][1] += sum(a['area'] for a in objs)
            named = PHRASE_TO_CATEGORY[EXPRESSION.match(
                ref['sentences'][0]['sent'])['category']]
            pred = [a for a in objs if a['categories_id'] == named]
            hit = target['categories_id'] == named
            sums['category'][0] += target['area'] if hit else 0
            sums['category'][1] += sum(
                a['area'] for a in pred) + (0 if hit else target['area'])
        oiou[split] = {k: 100 * i / u for k, (i, u) in sums.items()}
    assert oiou['test']['blind'] == oiou['control']['blind'] < 40
    assert oiou['control']['category'] < oiou['test']['category']
    blind = re.search(r'"every object": test ([\d.]+), control ([\d.]+)',
                      proc.stdout)
    cat = re.search(r'named category": test ([\d.]+), control ([\d.]+)',
                    proc.stdout)
    for match, key in ((blind, 'blind'), (cat, 'category')):
        for k, split in enumerate(('test', 'control'), 1):
            assert float(match[k]) == pytest.approx(oiou[split][key], abs=0.05)
    shared = 0
    for image_id, anns_ in per_image.items():
        cats = [a['categories_id'] for a in anns_]
        shared += len(set(cats)) < len(cats)
    # most images hold two objects of one category (colour not counted here)
    assert shared / len(per_image) > 0.6


def test_jsonl_matches_refs(dataset):
    out = dataset[0]
    inst, refs = load(out)
    anns = {a['id']: a for a in inst['annotations']}
    for split in ('train', 'val', 'test', 'control'):
        with open(out / 'datainfo' / f'rrsisd_{split}.jsonl') as f:
            lines = [json.loads(line) for line in f]
        expected = [r for r in refs if r['split'] == split]
        assert len(lines) == len(expected)
        for line, ref in zip(lines, expected):
            ann = anns[ref['ann_id']]
            assert list(line) == [
                'split', 'image_id', 'sent', 'file_name', 'category_id',
                'category_name', 'ann_id', 'bbox', 'segmentation', 'area'
            ]
            assert line['sent'] == ref['sentences'][0]['sent']
            assert line['category_name'] == REAL_CATEGORIES[
                line['category_id']]
            assert (line['split'], line['image_id'], line['file_name'],
                    line['category_id'],
                    line['ann_id']) == (split, ref['image_id'],
                                        ref['file_name'], ref['category_id'],
                                        ref['ann_id'])
            assert (line['bbox'], line['segmentation'],
                    line['area']) == (ann['bbox'], ann['segmentation'],
                                      ann['area'])


def _tree(root):
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob('*')) if p.is_file()
    }


def test_deterministic_for_a_seed(dataset, tmp_path):
    out = dataset[0]
    again = tmp_path / 'again'
    proc = run_script(again, *ARGS, '--img-size', str(SIZE), '--seed', '3',
                      '--jsonl')
    assert proc.returncode == 0, proc.stderr
    first, second = _tree(out), _tree(again)
    assert list(first) == list(second)
    for name in first:
        assert first[name] == second[name], name
    other = tmp_path / 'other'
    proc = run_script(other, *ARGS, '--img-size', str(SIZE), '--seed', '4',
                      '--jsonl')
    assert proc.returncode == 0, proc.stderr
    third = _tree(other)
    assert list(third) == list(first)
    jpgs = [n for n in first if n.endswith('.jpg')]
    assert all(first[n] != third[n] for n in jpgs)
    assert load(other)[1] != load(out)[1]


def test_test_split_independent_of_train_count(dataset, tmp_path):
    """Images are seeded per (seed, split, index)."""
    out = tmp_path / 'moretrain'
    proc = run_script(out, '--num-train', '7', '--num-val', '2', '--num-test',
                      '5', '--img-size', str(SIZE), '--seed', '3')
    assert proc.returncode == 0, proc.stderr
    jpg = Path('images') / 'rrsisd' / 'JPEGImages'
    # test images are 00009-00013 in the fixture, 00010-00014 here
    for i in range(9, 14):
        assert (dataset[0] / jpg / f'{i:05d}.jpg').read_bytes() == (
            out / jpg / f'{i + 1:05d}.jpg').read_bytes()
