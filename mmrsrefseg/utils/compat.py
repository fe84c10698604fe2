# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Let torch >= 2.6 load mmengine's own checkpoints with ``weights_only``.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True``: only
tensors, containers, primitive types and explicitly allow-listed globals are
unpickled. mmengine 0.10.7 calls ``torch.load(filename, map_location=...)``
without ``weights_only`` (``mmengine/runner/checkpoint.py``), so ``--resume``
and ``load_from`` of a checkpoint written by mmengine's ``CheckpointHook``
fail with ``Unsupported global: GLOBAL
mmengine.logging.history_buffer.HistoryBuffer``.

We fix this without forking mmengine, without ``weights_only=False`` and
without ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` (which switch the check off for
every file): :func:`register_mmengine_safe_globals` allow-lists exactly the
globals that a checkpoint of an mmengine ``Runner`` (mmseg default runtime:
``LoggerHook``, ``message_hub``, optimizer, param schedulers) pickles. They
were found empirically with ``pickletools`` and
``torch.serialization.get_unsafe_globals_in_checkpoint`` on such a
checkpoint (``tests/test_engine/test_checkpoint_compat.py`` re-checks it):

- ``mmengine.logging.history_buffer.HistoryBuffer``: every scalar of the
  message hub (``message_hub.log_scalars``) is one.
- ``numpy.ndarray`` and ``numpy.{core,_core}.multiarray._reconstruct``: a
  ``HistoryBuffer`` stores its log and count history as arrays.
- ``numpy.{core,_core}.multiarray.scalar``: numpy scalars in
  ``message_hub.runtime_info`` (e.g. ``eta``, ``best_score``) and float64
  metric values.
- ``numpy.dtype`` plus the dtype classes of numeric dtypes (``numpy.dtypes.
  Float64DType`` ...): a pickled dtype is rebuilt by calling ``numpy.dtype``
  and then ``BUILD`` sets its state, which torch only permits on allow-listed
  types. Object, string and structured dtypes are *not* allowed.
  Both the numpy 2 (``numpy._core``) and numpy 1 (``numpy.core``) paths of
  ``_reconstruct`` / ``scalar`` are mapped, so checkpoints written under
  numpy 1 load under numpy 2 and vice versa.
- ``builtins.getattr`` -- *not* the real one. ``HistoryBuffer.__getstate__``
  pickles its class-level ``_statistics_methods`` dict, i.e. the functions
  ``HistoryBuffer.min/max/current/mean``. ``torch.save`` uses pickle
  protocol 2, which cannot name a nested qualname (``HistoryBuffer.min``)
  directly and writes ``getattr(HistoryBuffer, 'min')`` instead. Allowing
  ``builtins.getattr`` itself would let a file read any attribute of any
  allow-listed object. We register under that name a stand-in,
  :func:`_history_buffer_statistic`, which only resolves those four
  ``HistoryBuffer`` methods and raises ``UnpicklingError`` for anything else.

Nothing is done for torch < 2.6 (``weights_only`` defaults to False there).
Registration is process-wide and idempotent; ``mmrsrefseg/__init__.py``
imports this module first, so ``custom_imports=['mmrsrefseg']`` in a config
is enough.
"""
import pickle
from typing import Any, Callable, List, Tuple, Union

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.utils import digit_version

#: The methods ``HistoryBuffer._set_default_statistics`` registers in
#: ``HistoryBuffer._statistics_methods`` (mmengine 0.10.x), i.e. the only
#: ``getattr(HistoryBuffer, name)`` calls an mmengine checkpoint contains.
HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')

#: Numeric numpy dtypes whose dtype classes may be rebuilt (``BUILD``).
_NUMERIC_DTYPES = ('bool', 'int8', 'int16', 'int32', 'int64', 'uint8',
                   'uint16', 'uint32', 'uint64', 'float16', 'float32',
                   'float64', 'longdouble', 'complex64', 'complex128')

SafeGlobal = Union[Callable, Tuple[Callable, str]]

#: torch version from which ``torch.load`` defaults to ``weights_only=True``.
WEIGHTS_ONLY_DEFAULT_TORCH = '2.6.0'


def _history_buffer_statistic(obj: Any, name: str) -> Callable:
    """Narrow stand-in for ``builtins.getattr`` in weights-only unpickling.

    Resolves only ``getattr(HistoryBuffer, name)`` for ``name`` in
    :data:`HISTORY_BUFFER_STATISTICS` -- the calls pickle protocol 2 writes
    for the ``HistoryBuffer.min/max/current/mean`` functions stored in a
    ``HistoryBuffer``'s state.

    Args:
        obj (Any): The object the checkpoint asks an attribute of; must be
            the ``HistoryBuffer`` class itself.
        name (str): The attribute name.

    Returns:
        Callable: The function ``HistoryBuffer.<name>``.

    Raises:
        pickle.UnpicklingError: For any other object or name.
    """
    if obj is not HistoryBuffer or name not in HISTORY_BUFFER_STATISTICS:
        raise pickle.UnpicklingError(
            'mmrsrefseg weights-only loading: the checkpoint asks for '
            f'getattr({obj!r}, {name!r}); only getattr(HistoryBuffer, m) '
            f'for m in {HISTORY_BUFFER_STATISTICS} is allowed. Load the file '
            'with torch.load(..., weights_only=False) only if you trust it.')
    return getattr(HistoryBuffer, name)


def mmengine_safe_globals() -> List[SafeGlobal]:
    """The allow-list for mmengine checkpoints (see the module docstring).

    Returns:
        list[Callable | tuple[Callable, str]]: Entries in the format of
        ``torch.serialization.add_safe_globals``: an object (allowed under
        its own ``module.qualname``) or ``(object, 'full.path')`` (allowed
        under that path).
    """
    # Take numpy's rebuild functions from their __reduce__ so the same code
    # finds them under numpy 1 (numpy.core) and numpy 2 (numpy._core).
    reconstruct = np.ndarray((0, )).__reduce__()[0]
    scalar = np.float64(0).__reduce__()[0]
    entries: List[SafeGlobal] = [HistoryBuffer, np.ndarray, np.dtype]
    for func, name in ((reconstruct, '_reconstruct'), (scalar, 'scalar')):
        for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
            entries.append((func, f'{module}.{name}'))
    entries += [type(np.dtype(t)) for t in _NUMERIC_DTYPES]
    # pickle (protocol 2) writes ``__builtin__ getattr``; torch maps it to
    # ``builtins.getattr`` before the allow-list lookup.
    entries.append((_history_buffer_statistic, 'builtins.getattr'))
    return entries


def needs_safe_globals() -> bool:
    """Whether this torch defaults ``torch.load`` to ``weights_only=True``.

    Returns:
        bool: True for torch >= 2.6.
    """
    return digit_version(
        torch.__version__) >= digit_version(WEIGHTS_ONLY_DEFAULT_TORCH)


def register_mmengine_safe_globals() -> bool:
    """Allow-list mmengine checkpoint globals for ``torch.load``.

    Idempotent: entries already present are not added again. Does nothing
    on torch < 2.6.

    Returns:
        bool: True if entries were added by this call, False if nothing had
        to be done (old torch or already registered).
    """
    if not needs_safe_globals():
        return False
    registered = set(torch.serialization.get_safe_globals())
    missing = [e for e in mmengine_safe_globals() if e not in registered]
    if not missing:
        return False
    torch.serialization.add_safe_globals(missing)
    return True


register_mmengine_safe_globals()
