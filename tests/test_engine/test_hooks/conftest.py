# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Fixtures of the hook tests."""
import pytest
from mmengine.registry import init_default_scope


@pytest.fixture(autouse=True)
def _mmseg_scope():
    """Resolve registry names in the mmseg scope, as configs do."""
    init_default_scope('mmseg')
