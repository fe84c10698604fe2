# A tiny RSRefSeg 2 (tiny SigLIP with a Gemma tokenizer + the cascaded
# prompter + a tiny SAM 2.1 Hiera, a few M parameters) for the embedded
# default: the whole main job runs on a 2-core CPU in minutes. The weights
# load through exactly the code path real checkpoints take:
# `tools/misc/make_tiny_checkpoints.py` writes a SigLIP2-format
# `save_pretrained` directory (SigLIP architecture, real-format Gemma
# SentencePiece tokenizer) and an official-format `sam2.1_hiera_*.pt` file
# from this very architecture; `tools/misc/pretrain_tiny_clip.py` then gives
# the SigLIP the image-text alignment RSRefSeg 2 presupposes (its dense
# prompt is the cosine of the refined SigLIP map with the pooled text
# feature). As in the paper, the SigLIP is frozen and adapted with LoRA; SAM
# 2.1 (random here) is trained fully rather than through adapters.
sam_image_size = 256
sam_width = 64
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=None,
    std=None,
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(sam_image_size, sam_image_size))
siglip_tower = dict(
    hidden_size=64,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=4)
# SAM 2.1 with Hiera-L's structure, scaled down: Hiera of 4 stages of 1, 1,
# 2, 1 blocks (8..64 channels; four stages give the three FPN levels
# `scalp=1` keeps plus the high-resolution features), FPN and SAM heads at
# `sam_width` channels. The video memory modules are never used, but an
# official file holds them, so they are here too, scaled down alike.
sam2_cfg = dict(
    _target_='sam2.modeling.sam2_base.SAM2Base',
    image_encoder=dict(
        _target_='sam2.modeling.backbones.image_encoder.ImageEncoder',
        scalp=1,
        trunk=dict(
            _target_='sam2.modeling.backbones.hieradet.Hiera',
            embed_dim=8,
            num_heads=1,
            stages=[1, 1, 2, 1],
            global_att_blocks=[3],
            window_pos_embed_bkg_spatial_size=[4, 4],
            window_spec=[8, 4, 4, 2]),
        neck=dict(
            _target_='sam2.modeling.backbones.image_encoder.FpnNeck',
            position_encoding=dict(
                _target_='sam2.modeling.position_encoding.'
                'PositionEmbeddingSine',
                num_pos_feats=sam_width,
                normalize=True,
                scale=None,
                temperature=10000),
            d_model=sam_width,
            backbone_channel_list=[64, 32, 16, 8],
            fpn_top_down_levels=[2, 3],
            fpn_interp_model='nearest')),
    memory_attention=dict(
        _target_='sam2.modeling.memory_attention.MemoryAttention',
        d_model=sam_width,
        pos_enc_at_input=True,
        layer=dict(
            _target_='sam2.modeling.memory_attention.MemoryAttentionLayer',
            activation='relu',
            dim_feedforward=2 * sam_width,
            dropout=0.1,
            pos_enc_at_attn=False,
            self_attention=dict(
                _target_='sam2.modeling.sam.transformer.RoPEAttention',
                rope_theta=10000.0,
                feat_sizes=[sam_image_size // 16, sam_image_size // 16],
                embedding_dim=sam_width,
                num_heads=1,
                downsample_rate=1,
                dropout=0.1),
            d_model=sam_width,
            pos_enc_at_cross_attn_keys=True,
            pos_enc_at_cross_attn_queries=False,
            cross_attention=dict(
                _target_='sam2.modeling.sam.transformer.RoPEAttention',
                rope_theta=10000.0,
                feat_sizes=[sam_image_size // 16, sam_image_size // 16],
                rope_k_repeat=True,
                embedding_dim=sam_width,
                num_heads=1,
                downsample_rate=1,
                dropout=0.1,
                kv_in_dim=sam_width // 2)),
        num_layers=1),
    memory_encoder=dict(
        _target_='sam2.modeling.memory_encoder.MemoryEncoder',
        out_dim=sam_width // 2,
        position_encoding=dict(
            _target_='sam2.modeling.position_encoding.PositionEmbeddingSine',
            num_pos_feats=sam_width // 2,
            normalize=True,
            scale=None,
            temperature=10000),
        mask_downsampler=dict(
            _target_='sam2.modeling.memory_encoder.MaskDownSampler',
            kernel_size=3,
            stride=2,
            padding=1,
            embed_dim=sam_width),
        fuser=dict(
            _target_='sam2.modeling.memory_encoder.Fuser',
            layer=dict(
                _target_='sam2.modeling.memory_encoder.CXBlock',
                dim=sam_width,
                kernel_size=7,
                padding=3,
                layer_scale_init_value=1e-06,
                use_dwconv=True),
            num_layers=1),
        in_dim=sam_width),
    # the rest as sam2.1_hiera_l.yaml
    num_maskmem=7,
    image_size=sam_image_size,
    sigmoid_scale_for_mem_enc=20.0,
    sigmoid_bias_for_mem_enc=-10.0,
    use_mask_input_as_output_without_sam=True,
    directly_add_no_mem_embed=True,
    no_obj_embed_spatial=True,
    use_high_res_features_in_sam=True,
    multimask_output_in_sam=True,
    iou_prediction_use_sigmoid=True,
    use_obj_ptrs_in_encoder=True,
    add_tpos_enc_to_obj_ptrs=True,
    proj_tpos_enc_in_obj_ptrs=True,
    use_signed_tpos_enc_to_obj_ptrs=True,
    only_obj_ptrs_in_the_past_for_eval=True,
    pred_obj_scores=True,
    pred_obj_scores_mlp=True,
    fixed_no_obj_ptr=True,
    multimask_output_for_tracking=True,
    use_multimask_token_for_obj_ptr=True,
    multimask_min_pt_num=0,
    multimask_max_pt_num=1,
    use_mlp_for_obj_ptr_proj=True,
    compile_image_encoder=False)
model = dict(
    type='RSRefSeg2',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='CLIPBackbone',
        model_type='siglip',
        pretrained='checkpoints/tiny/siglip2-tiny',
        text_feature='last_hidden_state',
        clip_resize='bilinear',  # the authors'
        config=dict(
            text_config=dict(
                # the tiny Gemma tokenizer's size; <pad> 0, <eos> 1, <bos> 2
                vocab_size=600,
                max_position_embeddings=64,
                projection_size=64,
                pad_token_id=0,
                bos_token_id=2,
                eos_token_id=1,
                **siglip_tower),
            vision_config=dict(image_size=128, patch_size=8, **siglip_tower))),
    neck=dict(
        type='CascadedPrompter',
        in_channels=64,
        prompt_channels=sam_width,
        num_queries=3,
        num_prompts=9,
        num_heads=4,
        # one block per stage (the authors' have 2): a tiny prompter, 12 %
        # less time per training step
        two_query_depth=1,
        step1_depth=1,
        step2_depth=1,
        attn_channels=64,
        ffn_channels=128,
        image_grid=(16, 16),  # 128 / 8
        mask_prompt_size=(sam_image_size // 4, sam_image_size // 4),
        text_padding='per_sample',
        # Per-sample norm: a sample's output never depends on its batch
        # (the paper configs use the authors' BN).
        norm_cfg=dict(type='LN2d', eps=1e-6)),
    decode_head=dict(
        type='SAM2PromptHead',
        preset=None,
        sam2_cfg=sam2_cfg,
        checkpoint='checkpoints/tiny/sam2.1_random_tiny.pt',
        # SAM 2.1's eval-time fallback picks among the multimask outputs by
        # the IoU head; both are random here and never trained (training
        # reads mask token 0 only), so the fallback is off.
        dynamic_multimask=False,
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
    # LoRA on the (pretrained) SigLIP only, on the authors' SigLIP targets;
    # SAM 2.1 is random here, so it trains fully rather than through
    # adapters.
    finetune_cfg=dict(
        frozen=['backbone.model.vision_model', 'backbone.model.text_model'],
        lora=dict(
            rank=8,
            alpha=8,
            dropout=0.,
            merge_in_eval=True,
            targets={
                'backbone.model.vision_model':
                r'encoder\.layers\.\d+\.self_attn\.(q|k|v|out)_proj'
                r'|head\.(attention\.out_proj|mlp\.fc[12])',
                'backbone.model.text_model':
                r'encoder\.layers\.\d+\.self_attn\.(q|k|v|out)_proj|head',
            }),
        # outside the graph, as in the paper config
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
