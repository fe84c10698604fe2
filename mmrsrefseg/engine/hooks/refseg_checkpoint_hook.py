# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""How the runner writes and reads referring-segmentor checkpoints."""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner, find_latest_checkpoint
from mmseg.registry import HOOKS

from mmrsrefseg.models.utils import (make_trained_only,
                                     model_state_from_checkpoint)

__all__ = ['RefSegCheckpointHook']


@HOOKS.register_module()
class RefSegCheckpointHook(Hook):
    """Trained-only checkpoints and strict loading through the runner.

    Works beside mmengine's ``CheckpointHook`` (which decides *when* to
    save and which checkpoints to keep):

    - ``before_save_checkpoint``: with ``trained_only``, the saved state dict
      keeps only what training changes (trained parameters, buffers outside
      the pretrained components); the frozen pretrained weights named by the
      config (``backbone.pretrained``, ``decode_head.checkpoint``) are left
      out and ``meta['trained_only']`` records the base. The weights of a
      paper-config RSRefSeg-b checkpoint shrink from 3.94 GB to 66 MB (a
      checkpoint for ``--resume`` adds AdamW's state of the trained
      parameters, 132 MB).
    - ``after_load_checkpoint`` (``load_from``, ``--resume``,
      ``tools/test.py``): the checkpoint is completed with the base weights
      when it is trained-only, and checked strictly against the model: a
      missing, unexpected or mis-shaped key is an error naming the keys and
      the file, raised before any sample is scored (mmengine's own loading
      is non-strict and only warns).

    Args:
        trained_only (bool): Save trained-only checkpoints. Defaults to
            True.
        strict (bool): Raise on a checkpoint that does not fit the model.
            Defaults to True; ``tools/test.py --non-strict`` turns it off
            (and records so in the leaderboard JSON).
    """

    priority = 'VERY_LOW'

    def __init__(self, trained_only: bool = True, strict: bool = True):
        self.trained_only = trained_only
        self.strict = strict

    @staticmethod
    def _model(runner: Runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def before_save_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        """Drop the frozen pretrained weights (``trained_only``)."""
        if self.trained_only and 'state_dict' in checkpoint:
            make_trained_only(self._model(runner), checkpoint)

    def after_load_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        """Complete a trained-only checkpoint and check it strictly.

        Raises:
            StateDictError: On missing, unexpected or mis-shaped keys.
        """
        if 'state_dict' not in checkpoint and 'meta' in checkpoint:
            return  # e.g. a DeepSpeed checkpoint: the strategy loads it
        source: Optional[str] = runner._load_from
        if source is None and runner._resume:
            # --resume without a file: mmengine resumes the latest one
            source = find_latest_checkpoint(runner.work_dir)
        state = model_state_from_checkpoint(
            self._model(runner),
            checkpoint,
            str(source or 'the loaded checkpoint'),
            strict=self.strict)
        checkpoint['state_dict'] = state


def add_checkpoint_hook(cfg, **overrides) -> dict:
    """Make sure ``cfg.custom_hooks`` holds a :class:`RefSegCheckpointHook`.

    ``tools/train.py`` and ``tools/test.py`` call this, so that a config
    without the hook still loads checkpoints strictly.

    Args:
        cfg (mmengine.Config): The run config (modified in place).
        **overrides: Hook arguments to set (e.g. ``strict=False``).

    Returns:
        dict: The hook's config entry.
    """
    hooks = list(cfg.get('custom_hooks') or [])
    entry = next(
        (h for h in hooks
         if h.get('type') in ('RefSegCheckpointHook', RefSegCheckpointHook)),
        None)
    if entry is None:
        entry = dict(type='RefSegCheckpointHook')
        hooks.append(entry)
    entry.update(overrides)
    cfg.custom_hooks = hooks
    return entry
