# A tiny RSRefSeg (random-initialised CLIP + SAM, a few M parameters) for the
# embedded default: the whole main job runs on a 2-core CPU in minutes. The
# weights load through exactly the code path real checkpoints take:
# `tools/misc/make_tiny_checkpoints.py` writes an HF `save_pretrained` CLIP
# directory (with the real CLIP BPE tokenizer) and an official-format SAM .pth
# from this very architecture.
sam_image_size = 256
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=None,
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
        model_type='clip',
        pretrained='checkpoints/tiny/clip-tiny',
        max_length=32,
        config=dict(
            projection_dim=64,
            text_config=dict(
                vocab_size=49408,
                hidden_size=64,
                intermediate_size=256,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=32,
                bos_token_id=49406,
                eos_token_id=49407,
                pad_token_id=49407),
            vision_config=dict(
                hidden_size=64,
                intermediate_size=256,
                num_hidden_layers=2,
                num_attention_heads=4,
                image_size=128,
                patch_size=8))),
    neck=dict(
        type='TextFilterNeck',
        in_channels=64,
        prompt_channels=64,
        num_downsample=1,  # 16 -> 8: 64 sparse prompt embeddings
        use_dense_prompt=True,
        mask_prompt_size=(64, 64),
        logit_mode='learnable',
        logit_scale_init=10.,
        logit_bias_init=0.),
    decode_head=dict(
        type='SAMPromptHead',
        sam_type=None,
        encoder_cfg=dict(
            embed_dim=64,
            depth=2,
            num_heads=4,
            global_attn_indexes=(1, ),
            window_size=8,
            patch_size=16),
        decoder_cfg=dict(mlp_dim=256, num_heads=4, iou_head_hidden_dim=64),
        image_size=sam_image_size,
        prompt_channels=64,
        checkpoint='checkpoints/tiny/sam_vit_tiny.pth',
        threshold=0.5,
        align_corners=False,
        loss_decode=[
            dict(
                type='CrossEntropyLoss',
                use_sigmoid=True,
                loss_weight=5.0,
                loss_name='loss_bce'),
            dict(
                type='DiceLoss',
                use_sigmoid=True,
                loss_weight=1.0,
                loss_name='loss_dice')
        ]),
    lora_cfg=None,  # full fine-tuning: LoRA on random weights makes no sense
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
