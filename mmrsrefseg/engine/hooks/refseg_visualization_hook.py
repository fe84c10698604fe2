# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Per-sample pictures of referring segmentation during val / test."""
from typing import Dict, Optional, Sequence

import mmcv
import mmengine.fileio as fileio
from mmengine.runner import Runner
from mmseg.engine.hooks import SegVisualizationHook
from mmseg.registry import HOOKS
from mmseg.structures import SegDataSample

from mmrsrefseg.visualization import ActivationRecorder, RefSegLocalVisualizer


@HOOKS.register_module()
class RefSegVisualizationHook(SegVisualizationHook):
    """Draw every val / test sample: image, ground truth, prediction, IoU.

    Like mmseg's :class:`SegVisualizationHook` (nothing happens unless
    ``draw=True``, which ``tools/test.py --show-dir DIR`` / ``--show`` set),
    but one picture per *sample* of every ``interval``-th batch, rendered by
    :class:`RefSegLocalVisualizer` (the image, the ground-truth overlay and
    the prediction overlay side by side under the referring expression and
    the sample's IoU), named after the sample so that the several
    expressions of one image do not overwrite each other:

    - ``{mode}_ref{ref_id}_sent{sent_id}`` (``_sent…`` only when the sample
      has a ``sent_id``) for samples with a ``ref_id``;
    - otherwise ``{mode}_{image file stem}_{index}``, ``index`` counting the
      samples of the loop from 0.

    With ``tools/test.py --show-dir DIR`` the ``LocalVisBackend`` writes them
    to ``DIR/vis_data/vis_image/{name}_{step}.png`` (``step`` is the
    training iteration recorded in the runner's message hub, 0 when only
    testing).

    With ``draw_activation=True`` (``tools/test.py --show-dir DIR
    --show-activation``) each picture also shows the activation maps the
    model's neck declares as heat maps over the image -- RSRefSeg: the
    global activation ``sigmoid(Z_g)`` and the mean local activation;
    RSRefSeg 2: the dense-prompt activation -- recorded from the same
    forward pass by :class:`ActivationRecorder`, which is only attached to
    the model during val / test epochs that draw them.

    Modified from ``mmseg/engine/hooks/visualization_hook.py``
    (Apache-2.0).

    Args:
        draw (bool): Draw anything at all. Defaults to False.
        interval (int): Draw the samples of every ``interval``-th batch.
            Defaults to 1 (all samples).
        show (bool): Display the pictures instead of storing them.
            Defaults to False.
        wait_time (float): Display time in seconds. Defaults to 0.
        backend_args (dict, optional): File backend arguments to read the
            images. Defaults to None.
        draw_activation (bool): Add the activation heat maps (only with
            ``draw=True``). Defaults to False.

    Raises:
        TypeError: When drawing, if the runner's visualizer is not a
            :class:`RefSegLocalVisualizer` (set ``visualizer =
            dict(type='RefSegLocalVisualizer', ...)`` in the config), or
            with ``draw_activation`` if the model's neck declares no
            activation maps.
    """

    def __init__(self,
                 draw: bool = False,
                 interval: int = 1,
                 show: bool = False,
                 wait_time: float = 0.,
                 backend_args: Optional[dict] = None,
                 draw_activation: bool = False):
        super().__init__(
            draw=draw,
            interval=interval,
            show=show,
            wait_time=wait_time,
            backend_args=backend_args)
        self.draw_activation = bool(draw_activation)
        self._num_samples: Dict[str, int] = {}
        self._recorder: Optional[ActivationRecorder] = None

    def _start_recording(self, runner: Runner) -> None:
        if self.draw and self.draw_activation:
            self._recorder = ActivationRecorder(runner.model).start()

    def _stop_recording(self) -> None:
        if self._recorder is not None:
            self._recorder.stop()
            self._recorder = None

    def before_val_epoch(self, runner: Runner) -> None:
        """Restart the sample index of the val loop; start recording."""
        self._num_samples['val'] = 0
        self._start_recording(runner)

    def before_test_epoch(self, runner: Runner) -> None:
        """Restart the sample index of the test loop; start recording."""
        self._num_samples['test'] = 0
        self._start_recording(runner)

    def after_val_epoch(self, runner: Runner, metrics=None) -> None:
        """Stop recording activation maps."""
        self._stop_recording()

    def after_test_epoch(self, runner: Runner, metrics=None) -> None:
        """Stop recording activation maps."""
        self._stop_recording()

    @staticmethod
    def sample_name(data_sample: SegDataSample, mode: str, index: int) -> str:
        """Picture name of a sample (see the class docstring).

        Args:
            data_sample (SegDataSample): With metainfo ``ref_id`` /
                ``sent_id`` or ``img_path``.
            mode (str): ``'val'`` or ``'test'``.
            index (int): Index of the sample in the loop.

        Returns:
            str: The name, without extension.
        """
        meta = data_sample.metainfo
        if meta.get('ref_id') is not None:
            name = f'{mode}_ref{meta["ref_id"]}'
            if meta.get('sent_id') is not None:
                name += f'_sent{meta["sent_id"]}'
            return name
        stem = meta.get('img_path') or 'image'
        stem = stem.replace('\\', '/').rsplit('/', 1)[-1].rsplit('.', 1)[0]
        return f'{mode}_{stem}_{index}'

    def _after_iter(self,
                    runner: Runner,
                    batch_idx: int,
                    data_batch: dict,
                    outputs: Sequence[SegDataSample],
                    mode: str = 'val') -> None:
        """Draw the samples of the batch (val / test only).

        Args:
            runner (Runner): The runner.
            batch_idx (int): Index of the batch in the loop.
            data_batch (dict): Data from the dataloader (unused).
            outputs (Sequence[SegDataSample]): Predictions with ground truth
                and metainfo ``img_path``, ``text``, ``ref_id``.
            mode (str): ``'train'``, ``'val'`` or ``'test'``.
        """
        if self.draw is False or mode == 'train':
            return
        first = self._num_samples.get(mode, 0)
        self._num_samples[mode] = first + len(outputs)
        if not self.every_n_inner_iters(batch_idx, self.interval):
            if self._recorder is not None:
                self._recorder.clear()
            return
        if not isinstance(self._visualizer, RefSegLocalVisualizer):
            raise TypeError(
                'RefSegVisualizationHook draws with RefSegLocalVisualizer, '
                f'but the visualizer is {type(self._visualizer).__name__}; '
                "set visualizer = dict(type='RefSegLocalVisualizer', "
                "vis_backends=[dict(type='LocalVisBackend')], "
                "name='visualizer') in the config")
        # Not ``runner.iter``: in a test-only run that property builds the
        # train loop and with it the training dataset.
        step = runner.message_hub.get_info('iter', 0)
        if self._recorder is not None:
            self._recorder.attach(outputs)
        for k, output in enumerate(outputs):
            img_bytes = fileio.get(
                output.img_path, backend_args=self.backend_args)
            img = mmcv.imfrombytes(img_bytes, channel_order='rgb')
            self._visualizer.add_datasample(
                self.sample_name(output, mode, first + k),
                img,
                data_sample=output,
                show=self.show,
                wait_time=self.wait_time,
                step=step)
