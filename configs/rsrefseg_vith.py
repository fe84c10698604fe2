# Short alias of RSRefSeg with SAM ViT-H.
_base_ = [
    './rsrefseg/rsrefseg_siglip-so400m-sam-vith_8xb1-amp-200e_rrsisd-1024x1024.py'  # noqa: E501
]
