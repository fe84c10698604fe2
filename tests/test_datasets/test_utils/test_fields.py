# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Field helpers of the annotation readers (mmrsrefseg.datasets.utils)."""
import numpy as np
import pytest

from mmrsrefseg.datasets.utils import (available_splits, join_img_path,
                                       require, to_int_id)

WHERE = 'ann.json: ref_id 7'


def test_to_int_id():
    assert to_int_id(11765, 'id', WHERE) == 11765
    assert to_int_id('11765', 'id', WHERE) == 11765
    assert to_int_id(np.int64(3), 'id', WHERE) == 3
    for bad in (None, 1.5, True, 'abc', ''):
        with pytest.raises(ValueError, match="ann.json: ref_id 7: field 'id'"):
            to_int_id(bad, 'id', WHERE)


def test_require_join_img_path_and_splits():
    assert require(dict(a=0), 'a', WHERE) == 0
    with pytest.raises(ValueError, match=f"{WHERE}: missing field 'b'"):
        require(dict(a=0), 'b', WHERE)
    assert join_img_path('imgs', '1.jpg', WHERE) == 'imgs/1.jpg'
    for bad in (None, '', 7):
        with pytest.raises(ValueError, match=f'{WHERE}: file_name must be'):
            join_img_path('imgs', bad, WHERE)
    assert available_splits(['val', None, 'train', 'val']) == \
        ['None', 'train', 'val']
