# RSRefSeg with SAM ViT-H (official sam_vit_h_4b8939.pth or an HF SamModel
# directory such as sam-vit-huge, which the authors' code also offers). No
# published numbers; at 1024x1024 consider
# --cfg-options model.decode_head.with_cp=True model.backbone.with_cp=True
_base_ = ['./rsrefseg_siglip-so400m-sam-vitb_8xb1-amp-200e_rrsisd-1024x1024.py']
model = dict(
    decode_head=dict(
        sam_type='vit_h', checkpoint='checkpoints/sam_vit_h_4b8939.pth'))
