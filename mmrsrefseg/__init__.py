# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""mmrsrefseg: RSRefSeg as an mmsegmentation plugin.

Importing this package registers every public class into mmseg's registries
(``mmseg.registry.{MODELS,DATASETS,TRANSFORMS,METRICS,HOOKS,VISUALIZERS}``), so
configs only need
``custom_imports = dict(imports=['mmrsrefseg'], allow_failed_imports=False)``.
"""
from .utils import compat  # noqa: F401,I001  (must run before checkpoints load)
from . import apis, datasets, engine, evaluation, models, visualization  # noqa: F401,E501
from .version import __version__, version_info

__all__ = ['__version__', 'version_info']
