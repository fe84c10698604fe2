# RSRefSeg-l trained as the authors did: DeepSpeed ZeRO-2 fp16 (see the -b
# DeepSpeed config).
_base_ = [
    './rsrefseg_siglip-so400m-sam-vitb_8xb1-deepspeed-fp16-200e_rrsisd-1024x1024.py'  # noqa: E501
]
model = dict(
    decode_head=dict(
        sam_type='vit_l', checkpoint='checkpoints/sam_vit_l_0b3195.pth'))
