# RSRefSeg-l: as RSRefSeg-b with SAM ViT-L (official sam_vit_l_0b3195.pth or
# an HF SamModel directory such as sam-vit-large); the authors'
# configs_RSRefSeg/RSRefSeg-l.py.
_base_ = ['./rsrefseg_siglip-so400m-sam-vitb_8xb1-amp-200e_rrsisd-1024x1024.py']
model = dict(
    decode_head=dict(
        sam_type='vit_l', checkpoint='checkpoints/sam_vit_l_0b3195.pth'))
