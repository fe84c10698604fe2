# mmseg's default runtime plus what every mmrsrefseg config needs: the plugin
# import and RefSegCheckpointHook (checkpoints keep only what was trained,
# the frozen pretrained weights come from the paths the model config names;
# every checkpoint the runner loads is checked strictly against the model).
_base_ = ['mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['mmrsrefseg'], allow_failed_imports=False)
custom_hooks = [dict(type='RefSegCheckpointHook', trained_only=True)]
visualizer = dict(
    type='RefSegLocalVisualizer',
    vis_backends=[dict(type='LocalVisBackend')],
    name='visualizer')
