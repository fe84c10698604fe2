# RSRefSeg 2 (arXiv:2507.06231): SigLIP2 so400m-patch16-512 + the cascaded
# prompter + SAM 2.1 Hiera-L, LoRA rank 16. The authors' model
# (KyanChen/RSRefSeg2, configs_RSRefSeg2/rrsisd_training.py). Building this
# config downloads nothing (both architectures are spelled out; weights load
# in init_weights()). Put the weights in checkpoints/ or override the paths:
#   model.backbone.pretrained: an HF save_pretrained directory of
#       google/siglip2-so400m-patch16-512 (Gemma tokenizer in the same
#       directory; the fixed-resolution SigLIP2 checkpoints use transformers'
#       SigLIP architecture)
#   model.decode_head.checkpoint: the official sam2.1_hiera_large.pt or an HF
#       SAM 2.1 directory (e.g. facebook/sam2.1-hiera-large)
sam_image_size = 1024
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=None,  # SigLIP2 and SAM 2.1 normalise with their own statistics
    std=None,
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(sam_image_size, sam_image_size),
    # images resized keeping their aspect ratio are padded (bottom / right)
    # to SAM 2.1's input size at test time too, as the authors' test path;
    # the padding is cut off the mask before it is resized to the image
    test_cfg=dict(size=(sam_image_size, sam_image_size)))
siglip_tower = dict(
    hidden_size=1152,
    intermediate_size=4304,
    num_hidden_layers=27,
    num_attention_heads=16,
    hidden_act='gelu_pytorch_tanh',
    layer_norm_eps=1e-6)
model = dict(
    type='RSRefSeg2',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='CLIPBackbone',
        model_type='siglip',
        pretrained='checkpoints/siglip2-so400m-patch16-512',
        # The authors' (refseg/models/models.py): text tokens = the text
        # tower's last_hidden_state; SigLIP2's input = normalise, then
        # bilinear 1024 -> 512 without antialiasing. Expressions longer than
        # the 64 text positions are truncated (theirs would fail).
        text_feature='last_hidden_state',
        clip_resize='bilinear',
        with_cp=False,
        # google/siglip2-so400m-patch16-512 config.json
        config=dict(
            text_config=dict(
                vocab_size=256000,
                max_position_embeddings=64,
                projection_size=1152,
                **siglip_tower),
            vision_config=dict(
                image_size=512, patch_size=16, **siglip_tower))),
    neck=dict(
        type='CascadedPrompter',
        in_channels=1152,
        prompt_channels=256,
        num_queries=3,
        num_prompts=9,
        image_grid=(32, 32),  # 512 / 16
        mask_prompt_size=(256, 256),
        # padding tokens out of the query pooling and the text attentions, so
        # a prediction does not depend on its batch; 'batch' = the authors'
        text_padding='per_sample',
        norm_cfg=dict(type='BN')),  # the authors' (not synchronised)
    decode_head=dict(
        type='SAM2PromptHead',
        preset='large',  # the input size (1024) comes with the preset
        checkpoint='checkpoints/sam2.1_hiera_large.pt',
        # SAM 2.1's eval-time fallback to the best multimask output when the
        # single mask is unstable (build_sam2's default, the authors')
        dynamic_multimask=True,
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
                loss_weight=5.0,
                loss_name='loss_dice')
        ]),
    query_loss=dict(type='QueryDecorrelationLoss', loss_weight=0.5),
    contrastive_loss=dict(
        type='InfoNCELoss', temperature_init=0.07, loss_weight=0.5),
    # The authors' fine-tuning (lora_cfg of their configs): LoRA rank 16,
    # alpha 16, dropout 0 on SAM 2.1's trunk attention and FPN neck convs and
    # on SigLIP2's attention projections and text head; trained fully: the
    # prompter, SAM 2.1's prompt encoder, mask decoder and no_mem_embed,
    # SigLIP2's logit scale and bias, the InfoNCE temperature.
    finetune_cfg=dict(
        frozen=[
            'backbone.model.vision_model', 'backbone.model.text_model',
            'decode_head.image_encoder'
        ],
        lora=dict(
            rank=16,
            alpha=16,
            dropout=0.,
            merge_in_eval=True,
            targets={
                'decode_head.image_encoder':
                r'trunk\.blocks\.\d+\.attn\.(qkv|proj)|neck\.convs\.\d+\.conv',
                'backbone.model.vision_model':
                r'encoder\.layers\.\d+\.self_attn\.(q|k|v|out)_proj'
                r'|head\.(attention\.out_proj|mlp\.fc[12])',
                'backbone.model.text_model':
                r'encoder\.layers\.\d+\.self_attn\.(q|k|v|out)_proj|head',
            }),
        # Never reach the loss: SigLIP2's attention-pooling head (with the
        # adapters the authors' regex puts on it), the point/box embeddings
        # and no-mask embedding of the prompt encoder, and the mask decoder's
        # IoU and object-score outputs. The authors leave them trainable and
        # set find_unused_parameters=True.
        unused=[
            'backbone.model.vision_model.head',
            'decode_head.sam_prompt_encoder.point_embeddings',
            'decode_head.sam_prompt_encoder.not_a_point_embed',
            'decode_head.sam_prompt_encoder.no_mask_embed',
            'decode_head.sam_mask_decoder.iou_prediction_head',
            'decode_head.sam_mask_decoder.pred_obj_score_head',
        ]),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
