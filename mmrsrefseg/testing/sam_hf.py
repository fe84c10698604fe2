# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""segment-anything -> HF ``SamModel`` key names (for references and tests).

The reverse of
:func:`mmrsrefseg.utils.sam_checkpoint.hf_sam_to_segment_anything` with the
same rule tables; mmrsrefseg itself never writes HF SAM weights.
"""
from typing import Dict

from torch import Tensor

from mmrsrefseg.utils.sam_checkpoint import (HYPERNETWORK_MLP_DEPTH, SA_MLP,
                                             SA_TO_HF, rename_key)

__all__ = ['segment_anything_to_hf_sam']


def segment_anything_to_hf_sam(state: Dict[str, Tensor],
                               iou_head_depth: int = 3) -> Dict[str, Tensor]:
    """Rename a segment-anything ``Sam`` state dict to HF ``SamModel`` keys.

    Args:
        state (dict[str, Tensor]): Keys ``image_encoder.*``,
            ``prompt_encoder.*``, ``mask_decoder.*`` (``pixel_mean`` /
            ``pixel_std`` are dropped: HF keeps them in the processor).
        iou_head_depth (int): Linear layers of the IoU head. Defaults to 3.

    Returns:
        dict[str, Tensor]: HF keys; the positional Gaussian matrix appears
        twice, as ``shared_image_embedding.positional_embedding`` and
        ``prompt_encoder.shared_embedding.positional_embedding``, as
        ``SamModel`` stores it.
    """
    out = {}
    for key, value in state.items():
        if key in ('pixel_mean', 'pixel_std'):
            continue
        m = SA_MLP.match(key)
        if m:
            depth = (
                iou_head_depth if m.group(2) == 'iou_prediction_head' else
                HYPERNETWORK_MLP_DEPTH)
            i = int(m.group(3))
            name = 'proj_in' if i == 0 else ('proj_out' if i == depth -
                                             1 else f'layers.{i - 1}')
            key = f'{m.group(1)}.{name}.' + key[m.end():]
        key = rename_key(key, SA_TO_HF)
        out[key] = value
        if key == 'prompt_encoder.shared_embedding.positional_embedding':
            out['shared_image_embedding.positional_embedding'] = value
    return out
