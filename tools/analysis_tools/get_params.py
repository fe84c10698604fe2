# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Count total and trainable parameters of a config's model, per component.

The model is built without pretrained weights (nothing is read or
downloaded); LoRA from ``model.lora_cfg`` is applied as in training.
"trainable" counts the parameters that receive gradients; the line
"authors' trainable count" adds the parameters that the authors' composition
leaves ``requires_grad=True`` although they never reach the loss (SAM's IoU
head and point embeddings, the LoRA adapter of SigLIP's unused pooling
head...; see ``RSRefSeg.unused_trainable_in_authors``). ``--compare-authors``
also builds the authors' composition (transformers + peft, random weights,
``mmrsrefseg.testing``) with the same shapes and counts it directly.

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
    parser.add_argument(
        '--compare-authors',
        action='store_true',
        help="also build the authors' composition (SigLIP configs only; "
        'about as much memory as the model itself) and print its counts')
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
    if lora and hasattr(model, 'authors_trainable_count'):
        label = "authors' trainable count"
        print(f"{label:<40}{'':>16}{model.authors_trainable_count():>16,}")
        for name, n in model.unused_trainable_in_authors.items():
            print(f'  + {name} ({n:,}): no gradient, frozen here')
    if args.compare_authors:
        from mmrsrefseg.testing import build_authors_from_config
        ref = build_authors_from_config(cfg.model.to_dict())
        total = sum(p.numel() for p in ref.parameters())
        trainable = sum(p.numel() for p in ref.parameters() if p.requires_grad)
        label = "authors' composition (built)"
        print(f'{label:<40}{total:>16,}{trainable:>16,}')


if __name__ == '__main__':
    main()
