# RSRefSeg with OpenAI CLIP ViT-B/16 (224 -> 14x14 patch grid) instead of
# SigLIP. CLIP's patch and text tokens are projected into the joint 512-d
# space by visual_projection / text_projection inside CLIPBackbone. CLIP has no
# logit bias: the neck learns one (logit_mode='backbone_scale').
_base_ = ['./rsrefseg_siglip-so400m-sam-vitb_8xb1-amp-200e_rrsisd-1024x1024.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='CLIPBackbone',
        model_type='clip',
        pretrained='checkpoints/clip-vit-base-patch16',
        # openai/clip-vit-base-patch16 config.json
        config=dict(
            projection_dim=512,
            text_config=dict(
                vocab_size=49408,
                hidden_size=512,
                intermediate_size=2048,
                num_hidden_layers=12,
                num_attention_heads=8,
                max_position_embeddings=77,
                hidden_act='quick_gelu',
                bos_token_id=49406,
                eos_token_id=49407,
                pad_token_id=1),
            vision_config=dict(
                hidden_size=768,
                intermediate_size=3072,
                num_hidden_layers=12,
                num_attention_heads=12,
                image_size=224,
                patch_size=16,
                hidden_act='quick_gelu'))),
    neck=dict(
        in_channels=512,
        num_downsample=1,  # 14 -> 7: 49 sparse prompt embeddings
        logit_mode='backbone_scale',
        logit_bias_init=-10.),
    # The LoRA targets of the SigLIP config match CLIP's attention
    # projections too (CLIP has no pooling head and no text head); CLIP's
    # vision tower has no attention-pooling head to leave out.
    finetune_cfg=dict(unused=[
        'decode_head.prompt_encoder.point_embeddings',
        'decode_head.prompt_encoder.not_a_point_embed',
        'decode_head.prompt_encoder.no_mask_embed',
        'decode_head.mask_decoder.iou_prediction_head',
    ]))
