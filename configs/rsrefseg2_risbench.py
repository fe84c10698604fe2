# Short alias of the RSRefSeg 2 config on risbench.
_base_ = [
    './rsrefseg2/rsrefseg2_siglip2-so400m-sam2.1-hiera-l_8xb8-amp-300e_risbench-1024x1024.py'  # noqa: E501
]
