# A tiny RSRefSeg (tiny OpenAI-style CLIP + tiny SAM, a few M parameters) for
# the embedded default: the whole main job runs on a 2-core CPU in minutes.
# The weights load through exactly the code path real checkpoints take:
# `tools/misc/make_tiny_checkpoints.py` writes an HF `save_pretrained` CLIP
# directory (with the real CLIP BPE tokenizer) and an official-format SAM .pth
# from this very architecture; `tools/misc/pretrain_tiny_clip.py` then gives
# the CLIP the image-text alignment that RSRefSeg presupposes (a dense sigmoid
# loss on the synthetic train split, bias fixed at 0). As in the paper, the
# CLIP is frozen and adapted with LoRA; SAM (random here) is trained fully.
# An OpenAI-style CLIP (the paper configs use SigLIP) keeps the CLIP code path
# of CLIPBackbone under test; the RSRefSeg 2 default
# (configs/rsrefseg2_tiny_synthetic.py) uses a tiny SigLIP.
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
        # As the HF image processors resize (the paper configs use the
        # authors' normalise-then-bilinear).
        clip_resize='bicubic_antialias',
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
        logit_mode='backbone_scale',  # CLIP has no bias: learnt, from 0
        logit_bias_init=0.,
        # Per-sample norm: a sample's output never depends on its batch
        # (the paper configs use the authors' SyncBN).
        norm_cfg=dict(type='LN2d', eps=1e-6)),
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
    # LoRA on the (pretrained) CLIP only; SAM is random here, so it trains
    # fully rather than through adapters.
    finetune_cfg=dict(
        frozen=['backbone'],
        lora=dict(
            rank=8,
            alpha=8,
            dropout=0.0,
            targets={
                'backbone.model.vision_model':
                r'encoder\.layers\.\d+\.self_attn\.(q|k|v|out)_proj',
                'backbone.model.text_model':
                r'encoder\.layers\.\d+\.self_attn\.(q|k|v|out)_proj',
            }),
        # outside the graph (no points/boxes, always a mask prompt, no IoU)
        unused=[
            'decode_head.prompt_encoder.point_embeddings',
            'decode_head.prompt_encoder.not_a_point_embed',
            'decode_head.prompt_encoder.no_mask_embed',
            'decode_head.mask_decoder.iou_prediction_head',
        ]),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
