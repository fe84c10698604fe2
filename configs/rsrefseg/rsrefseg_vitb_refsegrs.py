# RSRefSeg-b (configs/rsrefseg_vitb.py: SigLIP so400m + SAM ViT-B with LoRA,
# the paper's recipe) on RefSegRS in its native layout:
#   data/refsegrs/images/<id>.tif, data/refsegrs/masks/<id>.tif,
#   data/refsegrs/output_phrase_{train,val,test}.txt
# Only the datasets differ from the RRSIS-D config (same as
# configs/_base_/datasets/refsegrs.py): pipelines, loaders, metric, model and
# schedule are inherited.
#   bash tools/dist_train.sh configs/rsrefseg/rsrefseg_vitb_refsegrs.py 8
_base_ = ['../rsrefseg_vitb.py']
data_root = 'data/refsegrs'


def _refsegrs(split, pipeline, test_mode):
    return dict(
        _delete_=True,
        type='RefSegRSDataset',
        data_root=data_root,
        ann_file=f'output_phrase_{split}.txt',
        data_prefix=dict(img_path='images', seg_map_path='masks'),
        test_mode=test_mode,
        pipeline=pipeline)


train_dataloader = dict(
    dataset=_refsegrs('train', {{_base_.train_pipeline}}, False))
val_dataloader = dict(dataset=_refsegrs('val', {{_base_.test_pipeline}}, True))
test_dataloader = dict(
    dataset=_refsegrs('test', {{_base_.test_pipeline}}, True))
