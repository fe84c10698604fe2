# The embedded synthetic RRSIS-D (native layout, written by
# tools/dataset_converters/make_synthetic_rrsisd.py) at 256x256: the data of
# the tiny quick-start models.
_base_ = ['./rrsisd.py']
data_root = 'data/synthetic_rrsisd'
img_scale = (256, 256)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadRefSegAnnotations'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='PackSegInputs', meta_keys={{_base_.meta_keys}})
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='LoadRefSegAnnotations'),
    dict(type='PackSegInputs', meta_keys={{_base_.meta_keys}})
]
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
