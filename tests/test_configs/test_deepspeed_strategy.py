# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""The authors' DeepSpeed strategy builds with the pinned deepspeed.

mmengine 0.10.7's ``DeepSpeedStrategy`` imports deepspeed's optimizers
(``deepspeed.runtime.fp16.onebit`` among them) when it is built; a deepspeed
without them fails there with ``ModuleNotFoundError`` before any training.
deepspeed is optional (``requirements/optional.txt``, not installed by
``tools/install.sh``): the tests that need it skip without it. Building the
strategy and validating its config need no GPU; training with it does.
"""
import os.path as osp
import re

import pytest
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEEPSPEED_CONFIG = osp.join(
    REPO, 'configs', 'rsrefseg',
    'rsrefseg_siglip-so400m-sam-vitb_8xb1-deepspeed-fp16-200e_rrsisd-'
    '1024x1024.py')


def pinned_deepspeed() -> str:
    """The exact deepspeed version requirements/optional.txt pins."""
    with open(osp.join(REPO, 'requirements', 'optional.txt')) as f:
        lines = [
            line.split('#')[0].strip() for line in f
            if line.strip().startswith('deepspeed')
        ]
    assert len(lines) == 1, lines
    match = re.fullmatch(r'deepspeed==([0-9.]+)', lines[0])
    assert match, f'deepspeed is not pinned exactly: {lines[0]!r}'
    return match.group(1)


def test_deepspeed_pinned_below_the_onebit_removal():
    """0.19 dropped ``runtime.fp16.onebit``, which mmengine 0.10.7 needs."""
    version = tuple(int(v) for v in pinned_deepspeed().split('.'))
    assert (0, 13, 2) <= version < (0, 19), version


@pytest.fixture(scope='module')
def deepspeed():
    return pytest.importorskip(
        'deepspeed',
        reason='deepspeed is optional (requirements/optional.txt); not '
        'installed here')


def test_installed_deepspeed_is_the_pinned_one(deepspeed):
    # its source tree (on PYTHONPATH, not installed) says '0.17.6 '
    assert deepspeed.__version__.strip() == pinned_deepspeed()


def test_modules_mmengine_imports_exist(deepspeed):
    """What ``register_deepspeed_optimizers`` (mmengine 0.10.7) imports."""
    from deepspeed.ops.adam import DeepSpeedCPUAdam, FusedAdam
    from deepspeed.ops.lamb import FusedLamb
    from deepspeed.runtime.fp16.onebit import (OnebitAdam, OnebitLamb,
                                               ZeroOneAdam)
    assert all(
        isinstance(c, type) for c in (DeepSpeedCPUAdam, FusedAdam, FusedLamb,
                                      OnebitAdam, OnebitLamb, ZeroOneAdam))


def test_strategy_builds_from_the_authors_config(deepspeed):
    """The config's ``strategy`` builds (mmengine registers deepspeed's
    optimizers then) and deepspeed accepts the resulting engine config."""
    from deepspeed.runtime.config import DeepSpeedConfig
    from mmengine.registry import OPTIMIZERS, STRATEGIES
    cfg = Config.fromfile(DEEPSPEED_CONFIG)
    # mmengine registers deepspeed's optimizers without force=True at each
    # build, so a second strategy in one process raises KeyError: build once
    strategy = STRATEGIES.build(cfg.strategy.to_dict())
    assert type(strategy).__name__ == 'DeepSpeedStrategy'
    assert {'OnebitAdam', 'ZeroOneAdam',
            'FusedAdam'} <= set(OPTIMIZERS.module_dict)
    engine_cfg = dict(strategy.config, train_micro_batch_size_per_gpu=1)
    ds = DeepSpeedConfig(engine_cfg)
    assert ds.zero_optimization_stage == 2
    fp16 = ds.float16_config
    assert fp16.enabled and not fp16.auto_cast
    assert fp16.initial_scale_power == 15 and fp16.loss_scale == 0
