# RRSIS-D in the RSRefSeg authors' JSONL form (one line per sample; make it
# with tools/dataset_converters/rrsisd_to_jsonl.py data/rrsisd
# data/rrsisd/datainfo):
#   data/rrsisd/datainfo/rrsisd_{train,val,test}.jsonl
#   data/rrsisd/images/rrsisd/JPEGImages/NNNNN.jpg
# Pipelines, loaders and the metric are those of ./rrsisd.py; only the
# datasets differ.
_base_ = ['./rrsisd.py']
dataset_type = 'RefSegJsonlDataset'
data_root = 'data/rrsisd'


def _jsonl(split, pipeline, test_mode):
    return dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        ann_file=f'datainfo/rrsisd_{split}.jsonl',
        data_prefix=dict(img_path='images/rrsisd/JPEGImages'),
        test_mode=test_mode,
        pipeline=pipeline)


train_dataloader = dict(
    dataset=_jsonl('train', {{_base_.train_pipeline}}, False))
val_dataloader = dict(dataset=_jsonl('val', {{_base_.test_pipeline}}, True))
test_dataloader = dict(
    dataset=_jsonl('test', {{_base_.test_pipeline}}, True))
