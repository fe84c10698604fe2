# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Reading checkpoint files and loading state dicts strictly.

Every path that loads weights (the components' ``init_weights``, the
runner's ``load_from`` / ``--resume`` through
:class:`~mmrsrefseg.engine.hooks.RefSegCheckpointHook`, the inferencer and
the converters) goes through these functions, so a missing, unexpected or
mis-shaped key is always an error that names the keys and the file.
"""
import json
import os.path as osp
import pickle
import re
import zipfile
from typing import Dict, Iterable, List, Mapping, Optional

import torch
from torch import Tensor, nn

__all__ = [
    'read_checkpoint', 'state_dict_of', 'key_problems', 'format_keys',
    'to_module_keys', 'load_state_dict_strict', 'StateDictError',
    'check_hf_loading_info', 'read_hf_config', 'read_hf_pretrained'
]

#: How many keys an error message lists before it only counts the rest.
MAX_KEYS_SHOWN = 5


class StateDictError(KeyError, ValueError, RuntimeError):
    """Missing, unexpected or mis-shaped keys (the message names them).

    A ``KeyError`` (a key is missing or unexpected), a ``ValueError`` (a
    shape is wrong) and a ``RuntimeError`` (what ``load_state_dict`` raises
    on a mismatch); ``str()`` is the plain message (``KeyError`` would quote
    it).
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ''


def format_keys(keys: Iterable[str], limit: int = MAX_KEYS_SHOWN) -> str:
    """``'keys (3): a, b, c'`` or ``'keys (120): a, b, c, d, e, ...'``.

    Args:
        keys (Iterable[str]): Key names (order kept).
        limit (int): How many to list. Defaults to 5.

    Returns:
        str: The count and the first ``limit`` names.
    """
    keys = list(keys)
    shown = ', '.join(keys[:limit]) + (', ...' if len(keys) > limit else '')
    return f'keys ({len(keys)}): {shown}'


def read_checkpoint(path: str,
                    weights_only: bool = True,
                    mmap: bool = False) -> dict:
    """Load a ``torch.save`` file, with errors that name the file.

    Args:
        path (str): A ``.pth`` / ``.pt`` file.
        weights_only (bool): ``torch.load``'s safe unpickler (tensors,
            containers and the globals mmrsrefseg allow-lists for mmengine
            checkpoints). Defaults to True; False only for files whose
            format needs full pickles (DeepSpeed model states) and that the
            user trusts.
        mmap (bool): Memory-map the tensors of a zip-format file instead of
            reading them (a cheap check that the file is readable); older
            formats are read whole. Defaults to False.

    Returns:
        dict: What the file holds.

    Raises:
        FileNotFoundError: If ``path`` is not a file.
        ValueError: If the file is empty, truncated, not a torch file (e.g.
            a text file) or does not hold a dict.
    """
    if osp.isdir(path):
        raise FileNotFoundError(
            f'Checkpoint {path} is a directory, not a checkpoint file')
    if not osp.isfile(path):
        raise FileNotFoundError(f'Checkpoint not found: {path}')
    if osp.getsize(path) == 0:
        raise ValueError(f'Checkpoint file {path} is empty (0 bytes)')
    try:
        obj = torch.load(
            path,
            map_location='cpu',
            weights_only=weights_only,
            mmap=mmap and zipfile.is_zipfile(path))
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile,
            UnicodeDecodeError, KeyError, ValueError, RuntimeError) as e:
        # torch.load reports a text file as KeyError (an unknown pickle
        # opcode), a truncated zip as RuntimeError / BadZipFile, a foreign
        # pickle as UnpicklingError.
        raise ValueError(
            f'Cannot read checkpoint {path}: not a complete torch.save file '
            f'({type(e).__name__}: {e})') from e
    if not isinstance(obj, dict):
        raise ValueError(f'Checkpoint {path} holds a {type(obj).__name__}, '
                         'not a dict (a state dict or an mmengine checkpoint '
                         'with "state_dict")')
    return obj


def state_dict_of(checkpoint: dict, path: str) -> Dict[str, Tensor]:
    """The state dict of a checkpoint: ``checkpoint['state_dict']`` or the
    checkpoint itself when it is a bare state dict.

    A DDP ``module.`` prefix on every key is removed.

    Args:
        checkpoint (dict): From :func:`read_checkpoint`.
        path (str): The file, for error messages.

    Returns:
        dict[str, Tensor]

    Raises:
        ValueError: If it holds something other than tensors under string
            keys.
    """
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, Mapping):
        raise ValueError(f'Checkpoint {path}: "state_dict" is a '
                         f'{type(state).__name__}, not a dict')
    bad = [
        str(k) for k, v in state.items()
        if not isinstance(k, str) or not isinstance(v, Tensor)
    ]
    if bad:
        raise ValueError(f'Checkpoint {path} is not a state dict of tensors '
                         f'(e.g. {format_keys(bad)})')
    if state and all(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}
    return dict(state)


def key_problems(expected: Mapping,
                 state: Mapping,
                 optional: Iterable[str] = ()) -> List[str]:
    """Compare a state dict with the expected keys and shapes.

    Args:
        expected (Mapping[str, tuple]): Key -> shape of the destination.
        state (Mapping[str, Tensor]): The weights to load.
        optional (Iterable[str]): Expected keys that may be absent.

    Returns:
        list[str]: One sentence per kind of problem (missing, unexpected,
        mis-shaped keys), each naming the first keys and the count; empty
        when ``state`` fits exactly.
    """
    optional = set(optional)
    missing = [k for k in expected if k not in state and k not in optional]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f'{k} (checkpoint {tuple(state[k].shape)}, model '
        f'{tuple(expected[k])})' for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k])
    ]
    problems = []
    if missing:
        problems.append(f'missing {format_keys(missing)}')
    if unexpected:
        problems.append(f'unexpected {format_keys(unexpected)}')
    if mismatched:
        problems.append(f'mis-shaped {format_keys(mismatched)}')
    return problems


def to_module_keys(module: nn.Module, state: Mapping[str, Tensor],
                   source: str) -> Dict[str, Tensor]:
    """Rename official weights to ``module``'s keys and check them strictly.

    peft renames a LoRA-wrapped layer's weights from ``<name>.weight`` to
    ``<name>.base_layer.weight``; official checkpoints keep the original
    names, which are mapped accordingly. Every parameter and persistent
    buffer of ``module`` except the LoRA matrices must be provided, every
    provided key must be used, and shapes must agree.

    Args:
        module (nn.Module): Destination module.
        state (Mapping[str, Tensor]): Official weights.
        source (str): Where the weights come from (file or directory).

    Returns:
        dict[str, Tensor]: ``state`` under ``module``'s key names.

    Raises:
        StateDictError: On missing, unexpected or mis-shaped keys, naming
            the first keys of each kind, their count and ``source``.
    """
    own = module.state_dict()
    mapped = {}
    for key, value in state.items():
        target = key
        if target not in own:
            target = re.sub(r'\.(weight|bias)$', r'.base_layer.\1', key)
        mapped[target if target in own else key] = value
    expected = {k: tuple(v.shape) for k, v in own.items()}
    lora = [k for k in own if 'lora_' in k]
    problems = key_problems(expected, mapped, optional=lora)
    if problems:
        raise StateDictError(f'Cannot load {source} into '
                             f'{type(module).__name__} strictly: ' +
                             '; '.join(problems))
    return mapped


def load_state_dict_strict(module: nn.Module, state: Mapping[str, Tensor],
                           source: str) -> None:
    """Load official weights strictly, also into a LoRA-wrapped module.

    See :func:`to_module_keys`; the LoRA matrices keep their values.

    Args:
        module (nn.Module): Destination module.
        state (Mapping[str, Tensor]): Official weights.
        source (str): Where the weights come from, for error messages.

    Raises:
        StateDictError: On missing, unexpected or mis-shaped keys.
    """
    module.load_state_dict(to_module_keys(module, state, source), strict=False)


def check_hf_loading_info(info: Optional[dict], source: str) -> None:
    """Raise if transformers' ``from_pretrained`` loading info is not clean.

    Args:
        info (dict): ``output_loading_info`` of ``from_pretrained``
            (``missing_keys``, ``unexpected_keys``, ``mismatched_keys``).
        source (str): The directory.

    Raises:
        StateDictError: Naming the missing, unexpected or mis-shaped keys.
    """
    problems = []
    for field, what in (('missing_keys', 'missing'),
                        ('unexpected_keys', 'unexpected'), ('mismatched_keys',
                                                            'mis-shaped')):
        keys = [
            k if isinstance(k, str) else str(k[0])
            for k in (info or {}).get(field) or ()
            if not str(k).endswith('position_ids')
        ]
        if keys:
            problems.append(f'{what} {format_keys(sorted(keys))}')
    if problems:
        raise StateDictError(f'{source} does not hold every weight of its '
                             'config.json architecture: ' +
                             '; '.join(problems))


def read_hf_config(path: str) -> dict:
    """The ``config.json`` of an HF ``save_pretrained`` directory.

    Args:
        path (str): The directory.

    Returns:
        dict: The parsed JSON object.

    Raises:
        FileNotFoundError: If ``path`` has no ``config.json``.
        ValueError: If ``config.json`` is not a JSON object (the message
            names the file, and the line for a syntax error).
    """
    cfg_file = osp.join(path, 'config.json')
    if not osp.isfile(cfg_file):
        raise FileNotFoundError(f'{path} has no config.json (an HF '
                                'save_pretrained directory is expected)')
    try:
        with open(cfg_file, encoding='utf-8') as f:
            cfg = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f'{cfg_file}: not valid JSON (line {e.lineno}, '
                         f'column {e.colno}: {e.msg})') from e
    except UnicodeDecodeError as e:
        raise ValueError(f'{cfg_file}: not UTF-8 text ({e})') from e
    if not isinstance(cfg, dict):
        raise ValueError(f'{cfg_file}: holds a {type(cfg).__name__}, not a '
                         'JSON object')
    return cfg


def read_hf_pretrained(model_cls, path: str, model_type: str) -> nn.Module:
    """Load an HF model with ``from_pretrained`` and check it is complete.

    ``from_pretrained`` initialises weights that the files lack at random
    and only warns; here every weight of the directory's ``config.json``
    architecture must be in its files (none missing, unexpected or
    mis-shaped), else an error names them.

    Args:
        model_cls (type): A transformers ``PreTrainedModel`` class.
        path (str): A ``save_pretrained`` directory, or a hub id (resolved
            through the huggingface_hub cache; downloading needs network).
        model_type (str): The expected ``config.json`` ``model_type``.

    Returns:
        nn.Module: The loaded model (on the CPU).

    Raises:
        FileNotFoundError, ValueError: On a missing or bad ``config.json``
            or one of another ``model_type``.
        StateDictError: On missing, unexpected or mis-shaped weights.
    """
    if osp.isdir(path):
        found = read_hf_config(path).get('model_type')
        if found != model_type:
            raise ValueError(
                f'{osp.join(path, "config.json")}: model_type is {found!r}, '
                f'expected {model_type!r}')
    # ignore_mismatched_sizes: report mis-shaped weights in the loading info
    # (named below) instead of a RuntimeError that names none.
    model, info = model_cls.from_pretrained(
        path, output_loading_info=True, ignore_mismatched_sizes=True)
    check_hf_loading_info(info, path)
    return model
