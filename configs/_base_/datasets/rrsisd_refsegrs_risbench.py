# Training on RRSIS-D + RefSegRS + RISBench at once, each in its native layout
# (data/rrsisd, data/refsegrs, data/risbench; see ./rrsisd.py, ./refsegrs.py
# and ./risbench.py), through mmengine's ConcatDataset: one shuffled sampler
# over the union of the three train splits, every dataset with the train
# pipeline of ./rrsisd.py. Validation and test stay on RRSIS-D.
# RRSIS-D names 20 categories, RefSegRS and RISBench none, hence ignore_keys;
# the concatenation reports RRSIS-D's metainfo. Override a sub-dataset with
#   --cfg-options train_dataloader.dataset.datasets.1.data_root=/path
_base_ = ['./rrsisd.py']
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        ignore_keys=['classes', 'palette'],
        datasets=[
            {{_base_.train_dataloader.dataset}},
            dict(
                type='RefSegRSDataset',
                data_root='data/refsegrs',
                ann_file='output_phrase_train.txt',
                data_prefix=dict(img_path='images', seg_map_path='masks'),
                test_mode=False,
                pipeline={{_base_.train_pipeline}}),
            dict(
                type='RISBenchDataset',
                data_root='data/risbench',
                ann_file='output_phrase_train.txt',
                data_prefix=dict(img_path='img_rgb', seg_map_path='mask'),
                test_mode=False,
                pipeline={{_base_.train_pipeline}}),
        ]))
