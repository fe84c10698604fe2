# RSRefSeg-b (configs/rsrefseg_vitb.py: SigLIP so400m + SAM ViT-B with LoRA,
# the paper's recipe) on RISBench in its native layout:
#   data/risbench/img_rgb/<file>, data/risbench/mask/<file>,
#   data/risbench/output_phrase_{train,val,test}.txt
# Only the datasets differ from the RRSIS-D config (same as
# configs/_base_/datasets/risbench.py): pipelines, loaders, metric, model and
# schedule are inherited.
#   bash tools/dist_train.sh configs/rsrefseg/rsrefseg_vitb_risbench.py 8
_base_ = ['../rsrefseg_vitb.py']
data_root = 'data/risbench'


def _risbench(split, pipeline, test_mode):
    return dict(
        _delete_=True,
        type='RISBenchDataset',
        data_root=data_root,
        ann_file=f'output_phrase_{split}.txt',
        data_prefix=dict(img_path='img_rgb', seg_map_path='mask'),
        test_mode=test_mode,
        pipeline=pipeline)


train_dataloader = dict(
    dataset=_risbench('train', {{_base_.train_pipeline}}, False))
val_dataloader = dict(dataset=_risbench('val', {{_base_.test_pipeline}}, True))
test_dataloader = dict(
    dataset=_risbench('test', {{_base_.test_pipeline}}, True))
