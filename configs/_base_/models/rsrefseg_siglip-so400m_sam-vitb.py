# RSRefSeg-b (arXiv:2501.06809): SigLIP so400m-patch14-384 + SAM ViT-B, LoRA.
# Weight locations are config fields; building this config downloads nothing
# (the SigLIP architecture is spelled out below, weights load in
# init_weights()). Put the weights in checkpoints/ or override the paths with
# --cfg-options:
#   model.backbone.pretrained: an HF save_pretrained directory of
#       google/siglip-so400m-patch14-384 (tokenizer in the same directory)
#   model.decode_head.checkpoint: the official sam_vit_b_01ec64.pth or an HF
#       SamModel directory (e.g. the authors' KyanChen/sam-vit-base)
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
        pretrained='checkpoints/siglip-so400m-patch14-384',
        # The authors' choices (rsris/models/models.py); the alternatives are
        # documented in CLIPBackbone and the README.
        text_feature='last_hidden_state',  # or 'projected'
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
        # LayerNorm eps inside the mask decoder's two-way transformer blocks:
        # the authors' (transformers' SamMaskDecoder); 1e-5 = segment-anything
        transformer_norm_eps=1e-6,
        checkpoint='checkpoints/sam_vit_b_01ec64.pth',
        # image-encoder attention: FlexAttention on CUDA, the folded SDPA on
        # CPU (or 'flex', 'sdpa_folded', 'sdpa_mask', 'original')
        attn_impl='auto',
        threshold=0.5,
        align_corners=False,
        loss_decode=[
            dict(
                type='CrossEntropyLoss',
                use_sigmoid=True,
                loss_weight=5.0,
                loss_name='loss_bce')
        ]),
    # The authors' fine-tuning (configs_RSRefSeg/RSRefSeg-b.py lora_cfg): SigLIP
    # and SAM's image encoder frozen with LoRA rank 16, alpha 16, dropout 0.1;
    # the prompter, SAM's prompt encoder and mask decoder trained fully.
    finetune_cfg=dict(
        frozen=['backbone', 'decode_head.image_encoder'],
        lora=dict(
            rank=16,
            alpha=16,
            dropout=0.1,
            # eval: merged W + s*B*A where cheaper; False = peft's branch
            merge_in_eval=True,
            # submodule -> regex over its module names (re.fullmatch), the
            # authors' targets in our module names. SAM: qkv, proj, lin1, lin2
            # of every block and the neck convs (HF neck.conv1/conv2 =
            # segment-anything neck.0/neck.2; their suffix 'proj' does not
            # reach the patch embedding, which HF calls 'projection').
            # SigLIP vision: q/k/v/out_proj, plus the out_proj of the
            # attention-pooling head that peft's suffix match also adapts.
            # SigLIP text: q/k/v/out_proj and the text head.
            targets={
                'decode_head.image_encoder':
                r'blocks\.\d+\.(attn\.(qkv|proj)|mlp\.lin[12])|neck\.[02]',
                'backbone.model.vision_model':
                r'encoder\.layers\.\d+\.self_attn\.(q|k|v|out)_proj'
                r'|head\.attention\.out_proj',
                'backbone.model.text_model':
                r'encoder\.layers\.\d+\.self_attn\.(q|k|v|out)_proj|head',
            }),
        # Never reach the loss (no points/boxes, always a mask prompt, no IoU
        # score, no pooled SigLIP image feature): frozen entirely, adapters
        # included. The authors leave them trainable and set
        # find_unused_parameters=True. With neck.use_dense_prompt=False list
        # 'decode_head.prompt_encoder.mask_downscaling' instead of no_mask_embed.
        unused=[
            'backbone.model.vision_model.head',
            'decode_head.prompt_encoder.point_embeddings',
            'decode_head.prompt_encoder.not_a_point_embed',
            'decode_head.prompt_encoder.no_mask_embed',
            'decode_head.mask_decoder.iou_prediction_head',
        ],
        # 'bfloat16': the frozen linear / conv weights stored in bf16 (half
        # the memory, no per-step autocast casts; the same function under
        # the -amp configs' bf16 autocast); None keeps them float32
        frozen_dtype=None),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
