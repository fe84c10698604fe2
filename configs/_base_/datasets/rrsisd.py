# RRSIS-D in its native layout (refs(unc).p + instances.json):
#   data/rrsisd/rrsisd/refs(unc).p
#   data/rrsisd/rrsisd/instances.json
#   data/rrsisd/images/rrsisd/JPEGImages/NNNNN.jpg
# Images are resized to 1024x1024 without keeping the aspect ratio (RSRefSeg
# reference); the test ground truth is loaded after Resize and so stays at
# the original resolution, where the metric is computed.
dataset_type = 'RRSISDDataset'
data_root = 'data/rrsisd'
img_scale = (1024, 1024)
# mmseg's PackSegInputs defaults plus the referring expression and its ids,
# which travel in each data sample's metainfo (the model reads 'text')
meta_keys = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape',
             'pad_shape', 'scale_factor', 'flip', 'flip_direction',
             'reduce_zero_label', 'text', 'ref_id', 'ann_id', 'image_id',
             'sent_id', 'category_id')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadRefSegAnnotations'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='PackSegInputs', meta_keys=meta_keys)
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='LoadRefSegAnnotations'),
    dict(type='PackSegInputs', meta_keys=meta_keys)
]
train_dataloader = dict(
    batch_size=1,  # per GPU: the RSRefSeg authors' recipe (8 GPUs x 1)
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='rrsisd/refs(unc).p',
        instances_file='rrsisd/instances.json',
        data_prefix=dict(img_path='images/rrsisd/JPEGImages'),
        split='train',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='rrsisd/refs(unc).p',
        instances_file='rrsisd/instances.json',
        data_prefix=dict(img_path='images/rrsisd/JPEGImages'),
        split='val',
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='rrsisd/refs(unc).p',
        instances_file='rrsisd/instances.json',
        data_prefix=dict(img_path='images/rrsisd/JPEGImages'),
        split='test',
        test_mode=True,
        pipeline=test_pipeline))
# oIoU / mIoU / Pr@X overall; RefSegIoUMetric's breakdown=True (default)
# adds per-category and per-object-size tables (ground-truth area in pixels at
# the original resolution, COCO thresholds size_thresholds=(32**2, 96**2)) to
# the log and the --out JSON. Overall numbers only:
#   --cfg-options test_evaluator.breakdown=False
val_evaluator = dict(type='RefSegIoUMetric')
test_evaluator = val_evaluator
