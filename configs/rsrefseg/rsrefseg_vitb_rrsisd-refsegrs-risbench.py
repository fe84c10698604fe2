# RSRefSeg-b (configs/rsrefseg_vitb.py) trained on RRSIS-D + RefSegRS +
# RISBench at once, each in its native layout, through mmengine's
# ConcatDataset (one shuffled sampler over the union of the three train
# splits; every dataset keeps its own pipeline). Validation and test stay on
# RRSIS-D; test the checkpoint on the others with their own configs, e.g.
#   python tools/test.py configs/rsrefseg/rsrefseg_vitb_refsegrs.py CKPT
# Data roots: data/rrsisd, data/refsegrs, data/risbench (see the
# configs/_base_/datasets/*.py headers); override one with e.g.
#   --cfg-options train_dataloader.dataset.datasets.1.data_root=/path
# The three datasets name their categories differently (RRSIS-D: 20 DIOR
# classes, RefSegRS / RISBench: none), hence ignore_keys; the concatenation
# reports RRSIS-D's metainfo.
#   bash tools/dist_train.sh \
#       configs/rsrefseg/rsrefseg_vitb_rrsisd-refsegrs-risbench.py 8
_base_ = ['../rsrefseg_vitb.py']
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
                pipeline={{_base_.train_pipeline}}),
            dict(
                type='RISBenchDataset',
                data_root='data/risbench',
                ann_file='output_phrase_train.txt',
                data_prefix=dict(img_path='img_rgb', seg_map_path='mask'),
                pipeline={{_base_.train_pipeline}}),
        ]))
