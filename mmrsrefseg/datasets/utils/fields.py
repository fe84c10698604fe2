# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Field helpers of the annotation readers: ids, required fields, paths."""
import os.path as osp
from typing import Any, List, Sequence

import numpy as np


def is_int(value: Any) -> bool:
    """Whether ``value`` is a Python / numpy int (bools excluded)."""
    if isinstance(value, (bool, np.bool_)):
        return False
    return isinstance(value, (int, np.integer))


def is_number(value: Any) -> bool:
    """Whether ``value`` is a Python / numpy int or float (bools excluded)."""
    if isinstance(value, (bool, np.bool_)):
        return False
    return isinstance(value, (int, float, np.integer, np.floating))


def to_int_id(value: Any, field: str, where: str) -> int:
    """Normalise an id stored as an int or as a string of digits to int.

    RRSIS-D redistributions store ids sometimes as ``11765`` and sometimes as
    ``'11765'``.

    Args:
        value (Any): The stored id.
        field (str): Field name, for the error message.
        where (str): File and record the value comes from, for the error
            message.

    Returns:
        int: The id.

    Raises:
        ValueError: If ``value`` is missing (None), a bool, a float or a
            string that is not an integer.
    """
    if is_int(value):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError(f'{where}: field {field!r} must be an int or a string '
                     f'holding an int, got {value!r}')


def require(record: dict, field: str, where: str) -> Any:
    """Return ``record[field]``.

    Args:
        record (dict): A ref, annotation, image or JSONL record.
        field (str): The required field.
        where (str): File and record, for the error message.

    Returns:
        Any: The stored value.

    Raises:
        ValueError: If the field is absent.
    """
    if field not in record:
        raise ValueError(f'{where}: missing field {field!r}')
    return record[field]


def join_img_path(img_prefix: str, file_name: Any, where: str) -> str:
    """Join the image folder and a record's ``file_name``.

    Args:
        img_prefix (str): Image folder.
        file_name (Any): The stored file name.
        where (str): File and record, for the error message.

    Returns:
        str: The image path.

    Raises:
        ValueError: If ``file_name`` is not a non-empty str.
    """
    if not isinstance(file_name, str) or not file_name:
        raise ValueError(f'{where}: file_name must be a non-empty str, got '
                         f'{file_name!r}')
    return osp.join(img_prefix, file_name)


def available_splits(splits: Sequence[Any]) -> List[str]:
    """Sorted distinct split names, for error messages."""
    return sorted({str(s) for s in splits})
