# RRSIS-D in the RSRefSeg authors' JSONL form (one line per sample; make it
# with tools/dataset_converters/rrsisd_to_jsonl.py data/rrsisd
# data/rrsisd/datainfo):
#   data/rrsisd/datainfo/rrsisd_{train,val,test}.jsonl
#   data/rrsisd/images/rrsisd/JPEGImages/NNNNN.jpg
# Pipelines, loaders and the metric are those of ./rrsisd.py; only the
# datasets differ. A JSONL file names no complete class list, so the 20
# RRSIS-D categories (RRSISDDataset.METAINFO) are given here; every line's
# category_id / category_name is checked against them.
_base_ = ['./rrsisd.py']
dataset_type = 'RefSegJsonlDataset'
data_root = 'data/rrsisd'
rrsisd_metainfo = dict(
    classes=('Expressway-Service-area', 'Expressway-toll-station',
             'airplane', 'airport', 'baseballfield', 'basketballcourt',
             'bridge', 'chimney', 'dam', 'golffield', 'groundtrackfield',
             'harbor', 'overpass', 'ship', 'stadium', 'storagetank',
             'tenniscourt', 'trainstation', 'vehicle', 'windmill'),
    palette=[[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200],
             [245, 130, 48], [145, 30, 180], [70, 240, 240], [240, 50, 230],
             [210, 245, 60], [250, 190, 212], [0, 128, 128], [220, 190, 255],
             [170, 110, 40], [255, 250, 200], [128, 0, 0], [170, 255, 195],
             [128, 128, 0], [255, 215, 180], [0, 0, 128], [128, 128, 128]])


def _jsonl(split, pipeline, test_mode):
    return dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        ann_file=f'datainfo/rrsisd_{split}.jsonl',
        data_prefix=dict(img_path='images/rrsisd/JPEGImages'),
        metainfo=rrsisd_metainfo,
        test_mode=test_mode,
        pipeline=pipeline)


train_dataloader = dict(
    dataset=_jsonl('train', {{_base_.train_pipeline}}, False))
val_dataloader = dict(dataset=_jsonl('val', {{_base_.test_pipeline}}, True))
test_dataloader = dict(
    dataset=_jsonl('test', {{_base_.test_pipeline}}, True))
