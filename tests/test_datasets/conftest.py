# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Fixtures of the dataset tests."""
import pytest
from mmengine.registry import init_default_scope
from utils.refseg_data import DEFAULT_SPECS, make_rrsisd


@pytest.fixture(autouse=True)
def _mmseg_scope():
    """Resolve registry names in the mmseg scope, as configs do."""
    init_default_scope('mmseg')


@pytest.fixture
def native_root(tmp_path):
    """The default tiny native dataset: ``(root, make_rrsisd output)``."""
    root = tmp_path / 'rrsisd_tiny'
    return root, make_rrsisd(root, DEFAULT_SPECS)
