# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Readers of annotation files whose errors name the file (and line).

The phrase files of RefSegRS / RISBench and the JSONL files are UTF-8 text,
``instances.json`` is UTF-8 JSON and ``refs(unc).p`` a pickle. Python's own
errors for bad content (``UnicodeDecodeError``, ``JSONDecodeError``,
``UnpicklingError``, ``EOFError``) name neither the file nor the line; these
readers re-raise them as ``ValueError`` that do.
"""
import codecs
import json
import pickle
from typing import Any, List, Optional

from mmengine.fileio import get


def _read_bytes(path: str, backend_args: Optional[dict]) -> bytes:
    """Fetch a file with the mmengine file backend.

    Raises:
        FileNotFoundError: If the file does not exist.
    """
    return get(path, backend_args=backend_args)


def _decode_utf8(data: bytes, path: str) -> str:
    """Decode UTF-8 bytes (a leading byte order mark is dropped).

    Raises:
        ValueError: For bytes that are not UTF-8; the message names the file,
            the line (as counted by ``str.splitlines``) and the byte offset.
    """
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError as err:
        # the bytes before the bad one decode; count their line breaks
        line = len((data[:err.start].decode('utf-8') + '.').splitlines())
        raise ValueError(f'{path}: line {line}: not UTF-8 text ({err.reason} '
                         f'at byte {err.start})') from err


def read_text_lines(path: str,
                    backend_args: Optional[dict] = None) -> List[str]:
    """Read a UTF-8 text file into its lines.

    Args:
        path (str): Path or URI of the file.
        backend_args (dict, optional): Arguments of the mmengine file
            backend. Defaults to None (local files).

    Returns:
        list[str]: The lines, split by ``str.splitlines`` (line ``k`` of an
        error message is ``lines[k - 1]``), without line breaks.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If it is not UTF-8 (the message names the file and line).
    """
    return _decode_utf8(_read_bytes(path, backend_args), path).splitlines()


def load_json_file(path: str, backend_args: Optional[dict] = None) -> Any:
    """Load a UTF-8 JSON file.

    Args:
        path (str): Path or URI of the file.
        backend_args (dict, optional): Arguments of the mmengine file
            backend. Defaults to None (local files).

    Returns:
        Any: The parsed JSON value.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If it is empty, not UTF-8 or not valid JSON (truncated,
            garbage); the message names the file and the line and column.
    """
    data = _read_bytes(path, backend_args)
    if not data.strip():
        raise ValueError(f'{path}: empty file, expected JSON')
    text = _decode_utf8(data, path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f'{path}: line {err.lineno} column {err.colno}: not '
                         f'valid JSON ({err.msg}; truncated file?)') from err


def load_pickle_file(path: str, backend_args: Optional[dict] = None) -> Any:
    """Load a pickle file such as RRSIS-D's ``refs(unc).p``.

    Unpickling runs code named in the file: load only files you trust.

    Args:
        path (str): Path or URI of the file.
        backend_args (dict, optional): Arguments of the mmengine file
            backend. Defaults to None (local files).

    Returns:
        Any: The unpickled object.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If it is empty or not a readable pickle (truncated,
            garbage); the message names the file.
    """
    data = _read_bytes(path, backend_args)
    if not data:
        raise ValueError(f'{path}: empty file, expected a pickle')
    try:
        return pickle.loads(data)
    # the exceptions the pickle documentation lists for bad data, plus those
    # the C unpickler raises for malformed opcodes and arguments
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError,
            IndexError, KeyError, TypeError, ValueError, OverflowError) as err:
        raise ValueError(f'{path}: not a readable pickle ('
                         f'{type(err).__name__}: {err}; truncated or not a '
                         'pickle file?)') from err
