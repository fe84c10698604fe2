# RRSIS-D in the RSRefSeg authors' JSONL form (one line per sample; make it
# with tools/dataset_converters/rrsisd_to_jsonl.py data/rrsisd
# data/rrsisd/datainfo):
#   data/rrsisd/datainfo/rrsisd_{train,val,test}.jsonl
#   data/rrsisd/images/rrsisd/JPEGImages/NNNNN.jpg
# Images are resized to 1024x1024 without keeping the aspect ratio (RSRefSeg
# reference); the test ground truth is loaded after Resize and so stays at
# the original resolution, where the metric is computed.
dataset_type = 'RefSegJsonlDataset'
data_root = 'data/rrsisd'
img_scale = (1024, 1024)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadRefSegAnnotations'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='PackRefSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='LoadRefSegAnnotations'),
    dict(type='PackRefSegInputs')
]
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='datainfo/rrsisd_train.jsonl',
        data_prefix=dict(img_path='images/rrsisd/JPEGImages'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='datainfo/rrsisd_val.jsonl',
        data_prefix=dict(img_path='images/rrsisd/JPEGImages'),
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
        ann_file='datainfo/rrsisd_test.jsonl',
        data_prefix=dict(img_path='images/rrsisd/JPEGImages'),
        test_mode=True,
        pipeline=test_pipeline))
val_evaluator = dict(type='RefSegIoUMetric')
test_evaluator = val_evaluator
