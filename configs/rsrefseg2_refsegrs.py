# Short alias of the RSRefSeg 2 config on refsegrs.
_base_ = [
    './rsrefseg2/rsrefseg2_siglip2-so400m-sam2.1-hiera-l_8xb8-amp-600e_refsegrs-1024x1024.py'  # noqa: E501
]
