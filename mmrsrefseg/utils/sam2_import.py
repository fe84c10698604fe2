# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Build Meta's SAM 2.1 (``sam2`` 1.1.0) from a config dict, offline.

Meta's ``sam2`` package is installed with ``pip install --no-deps`` (its
``setup.py`` declares ``torchvision``, which would pull a second, CUDA torch;
see ``tools/install.sh``). Its model code (``sam2.modeling``,
``sam2.build_sam``) imports no torchvision, so no import shim is needed; the
package ``__init__`` only registers ``sam2``'s packaged YAML configs with
hydra (``initialize_config_module``, local files, no network).

``sam2.build_sam.build_sam2`` composes a config by *name* through hydra's
global state and then loads a checkpoint. Here the same packaged YAML is read
into a plain dict, which callers may edit (tiny test models, presets), and is
instantiated with ``hydra.utils.instantiate`` exactly as ``build_sam2`` does,
including its image-predictor post-processing switches (the dynamic
multimask fallback via stability in eval). This is the only place in
mmrsrefseg that imports ``sam2``.
"""
import copy
import importlib
import os.path as osp

__all__ = ['SAM2_PRESETS', 'import_sam2', 'sam2_model_cfg', 'build_sam2_model']

#: SAM 2.1 presets -> config file in ``sam2/configs/sam2.1/`` (Meta's names).
SAM2_PRESETS = {
    'tiny': 'sam2.1_hiera_t.yaml',
    'small': 'sam2.1_hiera_s.yaml',
    'base_plus': 'sam2.1_hiera_b+.yaml',
    'large': 'sam2.1_hiera_l.yaml',
}

# ``build_sam2(..., apply_postprocessing=True)`` (sam2 1.1.0 default): when a
# single mask is requested, fall back in eval to the best of the 3
# multimask outputs if the single-mask logits are unstable.
_IMAGE_PREDICTOR_ARGS = dict(
    dynamic_multimask_via_stability=True,
    dynamic_multimask_stability_delta=0.05,
    dynamic_multimask_stability_thresh=0.98)


def import_sam2():
    """Return the ``sam2`` package module.

    Returns:
        module: ``sam2`` (its ``modeling`` subpackage is importable).

    Raises:
        ImportError: If Meta's ``sam2`` is not installed, with the install
            command.
    """
    try:
        return importlib.import_module('sam2')
    except ImportError as e:
        raise ImportError(
            "Meta's sam2 (SAM 2.1) is not installed; run `SAM2_BUILD_CUDA=0 "
            'pip install --no-deps --no-build-isolation sam2==1.1.0 '
            'hydra-core iopath omegaconf antlr4-python3-runtime==4.9.3 '
            'portalocker` (see tools/install.sh).') from e


def sam2_model_cfg(preset: str = 'large', image_predictor: bool = True):
    """The ``model`` node of a packaged SAM 2.1 config, as a plain dict.

    Args:
        preset (str): One of :data:`SAM2_PRESETS` (Hiera-T/S/B+/L). Defaults
            to ``'large'``.
        image_predictor (bool): Add ``build_sam2``'s post-processing switches
            (``sam_mask_decoder_extra_args``: dynamic multimask via stability,
            delta 0.05, threshold 0.98). Defaults to True, as ``build_sam2``.

    Returns:
        dict: Hydra ``_target_`` tree of ``sam2.modeling.sam2_base.SAM2Base``
        (image encoder, memory attention/encoder, SAM heads, 1024 px input).

    Raises:
        KeyError: If ``preset`` is unknown.
    """
    from omegaconf import OmegaConf
    if preset not in SAM2_PRESETS:
        raise KeyError(f'Unknown SAM 2.1 preset {preset!r}; expected one of '
                       f'{sorted(SAM2_PRESETS)}')
    sam2 = import_sam2()
    path = osp.join(sam2.__path__[0], 'configs', 'sam2.1',
                    SAM2_PRESETS[preset])
    cfg = OmegaConf.to_container(OmegaConf.load(path), resolve=True)['model']
    if image_predictor:
        cfg['sam_mask_decoder_extra_args'] = dict(_IMAGE_PREDICTOR_ARGS)
    return cfg


def build_sam2_model(model_cfg: dict):
    """Instantiate ``SAM2Base`` from a config dict (random weights).

    Args:
        model_cfg (dict): A config such as :func:`sam2_model_cfg` returns.

    Returns:
        sam2.modeling.sam2_base.SAM2Base: In train mode (call ``eval()`` as
        needed; ``build_sam2`` returns it in eval mode).
    """
    from hydra.utils import instantiate
    import_sam2()
    return instantiate(copy.deepcopy(model_cfg), _recursive_=True)
