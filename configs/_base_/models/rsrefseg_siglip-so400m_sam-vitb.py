# RSRefSeg-b (arXiv:2501.06809): SigLIP so400m-patch14-384 + SAM ViT-B, LoRA.
# Weight locations are config fields; building this config downloads nothing
# (the SigLIP architecture is spelled out below, weights load in
# init_weights()). Override with --cfg-options, e.g.
#   model.backbone.pretrained=checkpoints/siglip-so400m-patch14-384
#   model.decode_head.checkpoint=checkpoints/sam_vit_b_01ec64.pth
sam_image_size = 1024
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=None,  # CLIP and SAM normalise with their own statistics inside
    std=None,
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(sam_image_size, sam_image_size))
model = dict(
    type='RSRefSeg',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='CLIPBackbone',
        model_type='siglip',
        pretrained='google/siglip-so400m-patch14-384',
        # The authors' choices (rsris/models/models.py); the alternatives are
        # documented in CLIPBackbone and the README.
        text_feature='last_hidden_state',  # or 'projected'
        pooling='eos',  # or 'last_position'
        clip_resize='bilinear',  # or 'bicubic_antialias'
        with_cp=False,  # activation checkpointing of both towers
        # google/siglip-so400m-patch14-384 config.json
        config=dict(
            text_config=dict(
                vocab_size=32000,
                hidden_size=1152,
                intermediate_size=4304,
                num_hidden_layers=27,
                num_attention_heads=16,
                max_position_embeddings=64,
                hidden_act='gelu_pytorch_tanh',
                layer_norm_eps=1e-6),
            vision_config=dict(
                hidden_size=1152,
                intermediate_size=4304,
                num_hidden_layers=27,
                num_attention_heads=16,
                image_size=384,
                patch_size=14,
                hidden_act='gelu_pytorch_tanh',
                layer_norm_eps=1e-6))),
    neck=dict(
        type='TextFilterNeck',
        in_channels=1152,
        prompt_channels=256,
        num_downsample=2,  # 27 -> 14 -> 7: 49 sparse prompt embeddings
        use_dense_prompt=True,
        mask_prompt_size=(256, 256),
        logit_mode='backbone',
        norm_cfg=dict(type='SyncBN', requires_grad=True)),  # the authors'
    decode_head=dict(
        type='SAMPromptHead',
        sam_type='vit_b',
        image_size=sam_image_size,
        prompt_channels=256,
        checkpoint='sam_vit_b_01ec64.pth',
        threshold=0.5,
        align_corners=False,
        loss_decode=[
            dict(
                type='CrossEntropyLoss',
                use_sigmoid=True,
                loss_weight=5.0,
                loss_name='loss_bce')
        ]),
    # configs_RSRefSeg/RSRefSeg-b.py: rank 16, alpha 16, dropout 0.1 on SAM's
    # qkv/proj/lin1/lin2 + neck convs, SigLIP q/k/v/out_proj + text head.
    lora_cfg=dict(rank=16, alpha=16, dropout=0.1, targets='authors'),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
