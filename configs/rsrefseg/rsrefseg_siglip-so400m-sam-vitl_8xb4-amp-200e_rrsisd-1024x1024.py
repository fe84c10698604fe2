# RSRefSeg-l: as RSRefSeg-b with SAM ViT-L (official sam_vit_l_0b3195.pth).
_base_ = ['./rsrefseg_siglip-so400m-sam-vitb_8xb4-amp-200e_rrsisd-1024x1024.py']
model = dict(
    decode_head=dict(
        sam_type='vit_l', checkpoint='checkpoints/sam_vit_l_0b3195.pth'))
