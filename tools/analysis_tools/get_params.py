# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Count total and trainable parameters of a config's model, per component.

The model is built without pretrained weights (nothing is read or
downloaded); LoRA from ``model.lora_cfg`` is applied as in training.

Example::

    python tools/analysis_tools/get_params.py configs/rsrefseg_vitb.py
"""
import argparse

from mmengine.config import Config, DictAction
from mmseg.registry import MODELS
from mmseg.utils import register_all_modules

from mmrsrefseg.utils.lora import count_parameters


def parse_args():
    parser = argparse.ArgumentParser(
        description='Print total and trainable parameter counts of the '
        'model of CONFIG per component (built without weights).')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value')
    return parser.parse_args()


def component_rows(model):
    """Yield ``(name, total, trainable)`` for the model's components."""
    parts = [
        ('backbone (CLIP vision)', model.backbone.model.vision_model),
        ('backbone (CLIP text)', model.backbone.model.text_model),
        ('neck (text filter + prompter)', model.neck),
        ('SAM image encoder', model.decode_head.image_encoder),
        ('SAM prompt encoder', model.decode_head.prompt_encoder),
        ('SAM mask decoder', model.decode_head.mask_decoder),
    ]
    counted = 0
    for name, module in parts:
        total, trainable = count_parameters(module)
        counted += total
        yield name, total, trainable
    total, trainable = count_parameters(model)
    seen = {id(p) for _, m in parts for p in m.parameters()}
    rest = [p for p in model.parameters() if id(p) not in seen]
    yield ('other (projections, logit scale/bias)', sum(p.numel()
                                                        for p in rest),
           sum(p.numel() for p in rest if p.requires_grad))
    yield 'total', total, trainable


def main():
    args = parse_args()
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = MODELS.build(cfg.model)  # no init_weights(): no weights read
    lora = cfg.model.get('lora_cfg')
    print(f'{args.config}')
    print(f"LoRA: {'rank %d' % lora.get('rank', 16) if lora else 'off'}")
    print(f"{'component':<40}{'total':>16}{'trainable':>16}")
    for name, total, trainable in component_rows(model):
        print(f'{name:<40}{total:>16,}{trainable:>16,}')


if __name__ == '__main__':
    main()
