# Short alias of the paper's RSRefSeg-l config.
_base_ = [
    './rsrefseg/rsrefseg_siglip-so400m-sam-vitl_8xb1-amp-200e_rrsisd-1024x1024.py'  # noqa: E501
]
