# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Import ``segment_anything``'s model code without torchvision.

``segment_anything/__init__.py`` (v1.0) imports ``SamPredictor`` and
``SamAutomaticMaskGenerator``, whose helpers import torchvision. The model code
itself (``segment_anything.modeling`` and ``segment_anything.build_sam``) needs
no torchvision, and no CPU build of torchvision exists in the registry used
here (its CUDA build breaks ``import transformers``' CLIP). When torchvision is
missing, this shim registers a bare ``segment_anything`` package module (its
``__path__`` taken from :func:`importlib.util.find_spec`) so that only the
submodules we use are imported. With torchvision present, the package is
imported normally. This is the only place in mmrsrefseg that imports
``segment_anything``.
"""
import importlib
import importlib.util
import sys
import types

__all__ = ['import_segment_anything']


def _has_torchvision():
    return importlib.util.find_spec('torchvision') is not None


def import_segment_anything():
    """Return ``(modeling, build_sam)`` modules of ``segment_anything``.

    Returns:
        tuple[module, module]: ``segment_anything.modeling`` (``Sam``,
        ``ImageEncoderViT``, ``PromptEncoder``, ``MaskDecoder``,
        ``TwoWayTransformer``) and ``segment_anything.build_sam``
        (``sam_model_registry``).

    Raises:
        ImportError: If the ``segment-anything`` package is not installed.
    """
    name = 'segment_anything'
    if name not in sys.modules and not _has_torchvision():
        spec = importlib.util.find_spec(name)
        if spec is None or spec.submodule_search_locations is None:
            raise ImportError(
                'segment-anything is not installed; run `pip install '
                'segment-anything==1.0` (see tools/install.sh).')
        package = types.ModuleType(name)
        package.__path__ = list(spec.submodule_search_locations)
        package.__file__ = spec.origin
        package.__spec__ = spec
        package.__package__ = name
        sys.modules[name] = package
    modeling = importlib.import_module(f'{name}.modeling')
    build_sam = importlib.import_module(f'{name}.build_sam')
    return modeling, build_sam
