# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""The model folders' metafiles name configs that exist and parse."""
import os.path as osp

import pytest
import yaml
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.mark.parametrize('folder', ['rsrefseg', 'rsrefseg2'])
def test_metafile_configs_exist(folder):
    with open(osp.join(REPO, 'configs', folder, 'metafile.yaml')) as f:
        meta = yaml.safe_load(f)
    assert meta['Collections'][0]['README'] == f'configs/{folder}/README.md'
    readme = open(osp.join(REPO, 'configs', folder, 'README.md')).read()
    for model in meta['Models']:
        config = osp.join(REPO, model['Config'])
        assert osp.isfile(config), model['Config']
        assert model['Name'] == osp.splitext(osp.basename(config))[0]
        assert osp.basename(config) in readme
        cfg = Config.fromfile(config)
        assert cfg.model.type in ('RSRefSeg', 'RSRefSeg2')
