# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""The join of RRSIS-D's ``refs(unc).p`` with its ``instances.json``.

Used by :class:`RRSISDDataset` and by
``tools/dataset_converters/rrsisd_to_jsonl.py``.
"""
from typing import Any, Dict

from .annotation_files import load_json_file, load_pickle_file
from .fields import require, to_int_id


def load_rrsisd_index(refs_file: str, instances_file: str) -> dict:
    """Load RRSIS-D's ``refs(unc).p`` and ``instances.json`` and index them.

    Args:
        refs_file (str): Path of the pickled list of refs.
        instances_file (str): Path of the COCO-like ``instances.json``.

    Returns:
        dict: ``refs`` (list of ref dicts as stored), ``anns`` and ``imgs``
        (dicts from int id to the stored record) and ``cats`` (int category
        id to name), plus the two file names.

    Raises:
        FileNotFoundError: If a file does not exist.
        ValueError: If a file is empty, truncated or not a pickle / JSON, or
            does not have the RRSIS-D structure (refs: a list of dicts;
            instances: an object whose ``annotations``, ``images`` and
            ``categories`` are lists of objects), or an id is malformed or
            duplicated. The message names the file and the entry.
    """
    refs = load_pickle_file(refs_file)
    if not isinstance(refs, list):
        raise ValueError(f'{refs_file}: expected a pickled list of refs, got '
                         f'{type(refs).__name__}')
    for position, ref in enumerate(refs):
        if not isinstance(ref, dict):
            raise ValueError(f'{refs_file}: refs[{position}]: expected a ref '
                             f'(dict), got {type(ref).__name__} {ref!r:.40}')
    instances = load_json_file(instances_file)
    if not isinstance(instances, dict):
        raise ValueError(f'{instances_file}: expected a JSON object, got '
                         f'{type(instances).__name__}')
    index = dict(refs=refs, refs_file=refs_file, instances_file=instances_file)
    for key, name in (('anns', 'annotations'), ('imgs', 'images'),
                      ('cats', 'categories')):
        records = require(instances, name, instances_file)
        if not isinstance(records, list):
            raise ValueError(f'{instances_file}: {name!r} must be a list, '
                             f'got {type(records).__name__}')
        table: Dict[int, Any] = {}
        for i, record in enumerate(records):
            where = f'{instances_file}: {name}[{i}]'
            if not isinstance(record, dict):
                raise ValueError(f'{where}: expected an object')
            record_id = to_int_id(require(record, 'id', where), 'id', where)
            if record_id in table:
                raise ValueError(f'{where}: duplicate id {record_id}')
            table[record_id] = (
                require(record, 'name', where) if key == 'cats' else record)
        index[key] = table
    return index


def join_rrsisd_ref(ref: dict, position: int, index: dict) -> dict:
    """Join one RRSIS-D ref with its annotation and image record.

    Args:
        ref (dict): The ref as stored in ``refs(unc).p``.
        position (int): Its position in the refs list, for error messages.
        index (dict): The output of :func:`load_rrsisd_index`.

    Returns:
        dict: ``where`` (error context: refs file and ref id), ``split``,
        int ``ref_id``, ``image_id``, ``ann_id``, ``category_id``, ``texts``
        (the ``sent`` of each sentence; None where absent), int ``sent_ids``,
        ``file_name`` (from the image record), ``ann`` and ``img`` (the stored
        annotation and image records).

    Raises:
        ValueError: If a field is missing or malformed, or the ref's
            ``ann_id`` / ``image_id`` is not in ``instances.json``, or the
            annotation belongs to another image.
    """
    refs_file, instances_file = index['refs_file'], index['instances_file']
    where = f'{refs_file}: refs[{position}]'
    ref_id = to_int_id(require(ref, 'ref_id', where), 'ref_id', where)
    where = f'{refs_file}: ref_id {ref_id}'
    image_id = to_int_id(require(ref, 'image_id', where), 'image_id', where)
    ann_id = to_int_id(require(ref, 'ann_id', where), 'ann_id', where)
    category_id = to_int_id(
        require(ref, 'category_id', where), 'category_id', where)
    if ann_id not in index['anns']:
        raise ValueError(f'{where}: unknown ann_id {ann_id} (not in '
                         f'{instances_file})')
    if image_id not in index['imgs']:
        raise ValueError(f'{where}: unknown image_id {image_id} (not in '
                         f'{instances_file})')
    ann = index['anns'][ann_id]
    ann_where = f'{where}: annotation {ann_id} in {instances_file}'
    ann_image_id = to_int_id(
        require(ann, 'image_id', ann_where), 'image_id', ann_where)
    if ann_image_id != image_id:
        raise ValueError(f'{where}: image_id {image_id} but its annotation '
                         f'{ann_id} in {instances_file} belongs to image '
                         f'{ann_image_id}')
    img = index['imgs'][image_id]
    file_name = require(img, 'file_name',
                        f'{where}: image {image_id} in {instances_file}')
    sentences = require(ref, 'sentences', where)
    if not isinstance(sentences, (list, tuple)):
        raise ValueError(f'{where}: sentences must be a list, got '
                         f'{type(sentences).__name__}')
    texts, sent_ids = [], []
    for k, sentence in enumerate(sentences):
        sent_where = f'{where}: sentences[{k}]'
        if not isinstance(sentence, dict):
            raise ValueError(f'{sent_where}: expected a dict')
        texts.append(sentence.get('sent'))
        sent_ids.append(
            to_int_id(
                require(sentence, 'sent_id', sent_where), 'sent_id',
                sent_where))
    return dict(
        where=where,
        split=ref.get('split'),
        ref_id=ref_id,
        image_id=image_id,
        ann_id=ann_id,
        category_id=category_id,
        texts=texts,
        sent_ids=sent_ids,
        file_name=file_name,
        ann=ann,
        img=img)
