# RISBench in its native layout (as distributed):
#   data/risbench/img_rgb/<file>                  (RGB)
#   data/risbench/mask/<file>                     (single-channel, object > 0)
#   data/risbench/output_phrase_{train,val,test}.txt   (<file> <expression>,
#                                                  <file> with its extension)
# Pipelines, loaders and the metric are those of ./rrsisd.py (images resized
# to 1024x1024; test masks kept at the original resolution); only the
# datasets differ.
_base_ = ['./rrsisd.py']
dataset_type = 'RISBenchDataset'
data_root = 'data/risbench'


def _risbench(split, pipeline, test_mode):
    return dict(
        _delete_=True,
        type=dataset_type,
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
