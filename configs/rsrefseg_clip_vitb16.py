# Short alias of RSRefSeg with OpenAI CLIP ViT-B/16 and SAM ViT-B.
_base_ = [
    './rsrefseg/rsrefseg_clip-vitb16-sam-vitb_8xb1-amp-200e_rrsisd-1024x1024.py'  # noqa: E501
]
