# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""mmrsrefseg: RSRefSeg as an mmsegmentation plugin.

Importing this package registers every public class into mmseg's registries
(``mmseg.registry.{MODELS,DATASETS,TRANSFORMS,METRICS,HOOKS,VISUALIZERS}``), so
configs only need
``custom_imports = dict(imports=['mmrsrefseg'], allow_failed_imports=False)``.
It also allow-lists what mmengine checkpoints pickle for torch >= 2.6
(``mmrsrefseg.utils.compat``), before any checkpoint is loaded.
"""
from . import apis, datasets, engine, evaluation, models, utils, visualization
from .version import __version__, version_info

__all__ = [
    '__version__', 'version_info', 'apis', 'datasets', 'engine', 'evaluation',
    'models', 'utils', 'visualization'
]
