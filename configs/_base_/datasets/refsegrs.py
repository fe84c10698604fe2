# RefSegRS in its native layout (as distributed):
#   data/refsegrs/images/<id>.tif                 (512x512 RGB)
#   data/refsegrs/masks/<id>.tif                  (8-bit, object > 0)
#   data/refsegrs/output_phrase_{train,val,test}.txt   (<id> <expression>)
# Pipelines, loaders and the metric are those of ./rrsisd.py (images resized
# to 1024x1024; test masks kept at the original 512x512); only the datasets
# differ.
_base_ = ['./rrsisd.py']
dataset_type = 'RefSegRSDataset'
data_root = 'data/refsegrs'


def _refsegrs(split, pipeline, test_mode):
    return dict(
        _delete_=True,
        type=dataset_type,
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
