# Short alias of the paper's RSRefSeg-b config.
_base_ = [
    './rsrefseg/rsrefseg_siglip-so400m-sam-vitb_8xb1-amp-200e_rrsisd-1024x1024.py'  # noqa: E501
]
