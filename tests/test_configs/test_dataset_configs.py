# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""The dataset configs (configs/_base_/datasets) and the RSRefSeg-b configs
on RefSegRS, RISBench and RRSIS-D + RefSegRS + RISBench build their datasets
on fixtures (no model, no weights)."""
import importlib.util
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.dataset import ConcatDataset
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS
from utils.native_layouts import (REFSEGRS_SAMPLES, RISBENCH_SAMPLES,
                                  make_refsegrs, make_risbench)
from utils.refseg_data import DEFAULT_SPECS, META_KEYS, make_rrsisd

from mmrsrefseg.datasets import RRSISDDataset

REPO = Path(__file__).parents[2]
LAYOUTS = dict(
    refsegrs=('RefSegRSDataset', make_refsegrs, REFSEGRS_SAMPLES,
              dict(img_path='images', seg_map_path='masks')),
    risbench=('RISBenchDataset', make_risbench, RISBENCH_SAMPLES,
              dict(img_path='img_rgb', seg_map_path='mask')))
SPLITS = ('train', 'val', 'test')


@pytest.fixture(autouse=True)
def _mmseg_scope():
    """Resolve registry names in the mmseg scope, as configs do."""
    init_default_scope('mmseg')


def _loaders(cfg):
    return [cfg[f'{split}_dataloader'] for split in SPLITS]


@pytest.mark.parametrize('name', ['rrsisd', 'rrsisd_jsonl'])
def test_base_dataset_configs(name, tmp_path):
    cfg = Config.fromfile(str(REPO / f'configs/_base_/datasets/{name}.py'))
    assert cfg.img_scale == (1024, 1024)
    assert [t['type'] for t in cfg.train_pipeline] == [
        'LoadImageFromFile', 'LoadRefSegAnnotations', 'Resize', 'PackSegInputs'
    ]
    assert [t['type'] for t in cfg.test_pipeline] == [
        'LoadImageFromFile', 'Resize', 'LoadRefSegAnnotations', 'PackSegInputs'
    ]
    # one tuple of meta keys: mmseg's defaults + the expression and its ids
    assert cfg.train_pipeline[-1].meta_keys == \
        cfg.test_pipeline[-1].meta_keys == cfg.meta_keys == META_KEYS
    assert cfg.meta_keys[-6:] == ('text', 'ref_id', 'ann_id', 'image_id',
                                  'sent_id', 'category_id')
    assert cfg.train_dataloader.batch_size == 1  # the authors: 1 per GPU
    assert cfg.train_dataloader.sampler == dict(
        type='DefaultSampler', shuffle=True)
    assert cfg.val_dataloader.batch_size == cfg.test_dataloader.batch_size \
        == 1
    assert cfg.val_evaluator == dict(type='RefSegIoUMetric')
    assert cfg.test_evaluator == cfg.val_evaluator
    root = tmp_path / 'rrsisd_tiny'
    make_rrsisd(root, DEFAULT_SPECS)
    dataset_cfg = cfg.test_dataloader.dataset.copy()
    dataset_cfg.data_root = str(root)
    if name == 'rrsisd_jsonl':
        tool = REPO / 'tools/dataset_converters/rrsisd_to_jsonl.py'
        spec = importlib.util.spec_from_file_location('conv', tool)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.convert_rrsisd_to_jsonl(str(root), str(root / 'datainfo'))
    dataset = DATASETS.build(dataset_cfg)
    packed = dataset[0]
    assert packed['inputs'].shape == (3, 1024, 1024)
    sample = packed['data_samples']
    assert sample.gt_sem_seg.data.shape == (1, 30, 20)
    assert sample.metainfo['text'] == 'the airplane at the bottom'
    # both forms of RRSIS-D name its 20 classes (the JSONL via the config)
    assert dataset.metainfo == RRSISDDataset.METAINFO
    assert dataset.metainfo['classes'][sample.metainfo['category_id']] == \
        'airplane'


@pytest.mark.parametrize('layout', sorted(LAYOUTS))
def test_base_dataset_config(layout, tmp_path):
    dataset_type, make, samples, prefix = LAYOUTS[layout]
    root = tmp_path / layout
    make(root, samples)
    cfg = Config.fromfile(str(REPO / f'configs/_base_/datasets/{layout}.py'))
    rrsisd = Config.fromfile(str(REPO / 'configs/_base_/datasets/rrsisd.py'))
    # loaders, pipelines and metric are those of rrsisd.py
    assert cfg.train_pipeline == rrsisd.train_pipeline
    assert cfg.test_pipeline == rrsisd.test_pipeline
    assert cfg.val_evaluator == cfg.test_evaluator == dict(
        type='RefSegIoUMetric')
    for loader, ref, split in zip(_loaders(cfg), _loaders(rrsisd), SPLITS):
        assert {k: v for k, v in loader.items() if k != 'dataset'} == \
            {k: v for k, v in ref.items() if k != 'dataset'}
        assert loader.dataset == dict(
            type=dataset_type,
            data_root=f'data/{layout}',
            ann_file=f'output_phrase_{split}.txt',
            data_prefix=prefix,
            test_mode=split != 'train',
            pipeline=ref.dataset.pipeline)
    for split, loader in zip(SPLITS, _loaders(cfg)):
        dataset_cfg = loader.dataset.copy()
        dataset_cfg.data_root = str(root)
        dataset = DATASETS.build(dataset_cfg)
        assert len(dataset) == sum(s['split'] == split for s in samples)
        packed = dataset[0]
        assert packed['inputs'].shape == (3, 1024, 1024)
        first = next(s for s in samples if s['split'] == split)
        gt = packed['data_samples'].gt_sem_seg.data
        if split == 'train':
            assert gt.shape == (1, 1024, 1024)
        else:  # test order: ground truth at the original resolution
            assert gt.shape == (1, *first['img_hw'])
        assert packed['data_samples'].metainfo['text'] == \
            ' '.join(first['text'].split())


@pytest.mark.parametrize('layout', sorted(LAYOUTS))
def test_model_config_datasets(layout, tmp_path):
    root = tmp_path / layout
    LAYOUTS[layout][1](root, LAYOUTS[layout][2])
    cfg = Config.fromfile(
        str(REPO / f'configs/rsrefseg/rsrefseg_vitb_{layout}.py'))
    paper = Config.fromfile(str(REPO / 'configs/rsrefseg_vitb.py'))
    base = Config.fromfile(str(REPO / f'configs/_base_/datasets/{layout}.py'))
    # everything but the datasets is the paper's RSRefSeg-b recipe
    for key in paper:
        if key not in ('train_dataloader', 'val_dataloader', 'test_dataloader',
                       'data_root', 'dataset_type'):
            assert cfg[key] == paper[key], key
    for loader, ref in zip(_loaders(cfg), _loaders(paper)):
        assert {k: v for k, v in loader.items() if k != 'dataset'} == \
            {k: v for k, v in ref.items() if k != 'dataset'}
    # and the datasets are those of the _base_ dataset config
    for loader, ref in zip(_loaders(cfg), _loaders(base)):
        assert loader.dataset == ref.dataset
    cfg.merge_from_dict({
        f'{split}_dataloader.dataset.data_root': str(root)
        for split in SPLITS
    })
    for split, loader in zip(SPLITS, _loaders(cfg)):
        dataset = DATASETS.build(loader.dataset)
        assert type(dataset).__name__ == LAYOUTS[layout][0]
        assert len(dataset) == sum(s['split'] == split
                                   for s in LAYOUTS[layout][2])
        assert dataset[0]['inputs'].shape == (3, 1024, 1024)


def test_concat_config(tmp_path):
    roots = dict(
        rrsisd=tmp_path / 'rrsisd',
        refsegrs=tmp_path / 'refsegrs',
        risbench=tmp_path / 'risbench')
    make_rrsisd(roots['rrsisd'], DEFAULT_SPECS)
    make_refsegrs(roots['refsegrs'], REFSEGRS_SAMPLES)
    make_risbench(roots['risbench'], RISBENCH_SAMPLES)
    cfg = Config.fromfile(
        str(REPO /
            'configs/rsrefseg/rsrefseg_vitb_rrsisd-refsegrs-risbench.py'))
    paper = Config.fromfile(str(REPO / 'configs/rsrefseg_vitb.py'))
    concat = cfg.train_dataloader.dataset
    assert concat.type == 'ConcatDataset'
    assert [d.type for d in concat.datasets
            ] == ['RRSISDDataset', 'RefSegRSDataset', 'RISBenchDataset']
    assert concat.datasets[0] == paper.train_dataloader.dataset
    assert all(d.pipeline == paper.train_pipeline for d in concat.datasets)
    # the sub-datasets are those of the single-dataset configs
    for i, layout in ((1, 'refsegrs'), (2, 'risbench')):
        base = Config.fromfile(
            str(REPO / f'configs/_base_/datasets/{layout}.py'))
        single = base.train_dataloader.dataset.copy()
        single.pop('_delete_', None)
        assert concat.datasets[i] == single
    # everything but the train set is the paper's RSRefSeg-b recipe
    for key in paper:
        if key != 'train_dataloader':
            assert cfg[key] == paper[key], key
    assert {k: v for k, v in cfg.train_dataloader.items() if k != 'dataset'} \
        == {k: v for k, v in paper.train_dataloader.items() if k != 'dataset'}
    # validation and test stay on RRSIS-D
    assert cfg.val_dataloader == paper.val_dataloader
    assert cfg.test_dataloader == paper.test_dataloader
    cfg.merge_from_dict({
        f'train_dataloader.dataset.datasets.{i}.data_root':
        str(roots[name])
        for i, name in enumerate(('rrsisd', 'refsegrs', 'risbench'))
    })
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    assert isinstance(dataset, ConcatDataset)
    # RRSIS-D train: 3 refs with 2 + 1 + 3 expressions; RefSegRS 4; RISBench 3
    assert [len(d) for d in dataset.datasets] == [6, 4, 3]
    assert len(dataset) == 13
    # each dataset names its own classes; the concatenation reports the
    # first one's (hence ignore_keys=['classes', 'palette'])
    assert dataset.metainfo['classes'][0] == 'Expressway-Service-area'
    assert [len(d.metainfo['classes']) for d in dataset.datasets] == [20, 0, 0]
    texts = [dataset[i]['data_samples'].metainfo['text'] for i in (0, 6, 10)]
    assert texts == [
        'the red tank on the left', 'the long road on the left',
        'the large ship at the top'
    ]
    categories = [
        dataset[i]['data_samples'].metainfo['category_id'] for i in (0, 6, 10)
    ]
    assert categories == [15, None, None]
    assert all(dataset[i]['inputs'].shape == (3, 1024, 1024)
               for i in (0, 6, 10))
