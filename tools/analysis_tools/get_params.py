# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Count total and trainable parameters of a config's model, per component.

The model is built without pretrained weights (nothing is read or
downloaded) and fine-tuned as the config's ``model.finetune_cfg`` says.
"trainable" counts the parameters that receive gradients; the line
"authors' trainable count" adds the parameters of ``finetune_cfg.unused``
that the authors' composition leaves ``requires_grad=True`` although they
never reach the loss (SAM's IoU head and point embeddings, the LoRA adapter
of SigLIP's unused pooling head...). ``--compare-authors`` also builds the
authors' composition (transformers + peft, random weights,
``mmrsrefseg.testing``) with the same shapes and counts it directly; for
RSRefSeg 2 it also matches the two trainable sets parameter by parameter
(the authors' names through the released-checkpoint converter's renaming),
so the check names any parameter trainable on one side only. Our model is
freed before theirs is built (at real size each takes about 6 GB).

Example::

    python tools/analysis_tools/get_params.py configs/rsrefseg_vitb.py
    python tools/analysis_tools/get_params.py configs/rsrefseg2_rrsisd.py \
        --compare-authors
"""
import argparse
import copy
import gc
import math

from mmengine.config import Config, DictAction
from mmseg.registry import MODELS
from mmseg.utils import register_all_modules

from mmrsrefseg.models.utils import apply_finetune_cfg
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
        help="also build the authors' composition (SigLIP RSRefSeg and "
        'RSRefSeg 2 configs; about as much memory as the model itself) and '
        'print its counts; for RSRefSeg 2 also compare the trainable sets '
        'parameter by parameter')
    return parser.parse_args()


def components(model):
    """``(path, module)`` of the model's components, one level into the
    backbone's wrapped model and the decode head."""
    parts = []
    for name in ('backbone', 'neck', 'decode_head'):
        module = getattr(model, name)
        inner = getattr(module, 'model', module) if name == 'backbone' \
            else module
        prefix = f'{name}.model' if inner is not module else name
        children = [(f'{prefix}.{n}', m) for n, m in inner.named_children()
                    if any(True for _ in m.parameters())]
        parts += children if name != 'neck' and children else [(name, module)]
    return parts


def component_rows(model):
    """Yield ``(name, total, trainable)`` per component, the rest (one row
    per parameter, indented), total."""
    parts = components(model)
    for name, module in parts:
        total, trainable = count_parameters(module)
        yield name, total, trainable
    seen = {id(p) for _, m in parts for p in m.parameters()}
    rest = [(n, p) for n, p in model.named_parameters() if id(p) not in seen]
    yield ('other', sum(p.numel() for _, p in rest),
           sum(p.numel() for _, p in rest if p.requires_grad))
    for name, p in rest:
        yield f'  {name}', p.numel(), p.numel() if p.requires_grad else 0
    total, trainable = count_parameters(model)
    yield 'total', total, trainable


def compare_rsrefseg2_authors(model_cfg: dict, ours: dict) -> None:
    """Build the authors' RSRefSeg 2 and match its trainable set to ours.

    Their trainable parameters are renamed by the released-checkpoint
    converter (:func:`~mmrsrefseg.utils.authors_rsrefseg2_checkpoint.
    convert_authors_rsrefseg2`); the keys it drops on purpose (their loss
    scalars without effect) are reported as such.

    Args:
        model_cfg (dict): ``model`` of an RSRefSeg 2 config.
        ours (dict[str, tuple]): Our trainable parameters as the authors
            leave them (before freezing ``finetune_cfg.unused``): name ->
            shape.
    """
    from mmrsrefseg.testing.authors_rsrefseg2 import \
        build_authors_rsrefseg2_from_config
    from mmrsrefseg.utils.authors_rsrefseg2_checkpoint import \
        convert_authors_rsrefseg2
    ref = build_authors_rsrefseg2_from_config(model_cfg)
    params = dict(ref.named_parameters())
    total = sum(p.numel() for p in params.values())
    trainable = {n: p for n, p in params.items() if p.requires_grad}
    label = "authors' composition (built)"
    print(f'{label:<40}{total:>16,}'
          f'{sum(p.numel() for p in trainable.values()):>16,}')
    renamed, dropped = convert_authors_rsrefseg2({
        n: p.detach()
        for n, p in trainable.items()
    })
    theirs = {n: tuple(p.shape) for n, p in renamed.items()}
    for key in dropped:
        print(f'  - {key} ({trainable[key].numel():,}): theirs only, a loss '
              'scalar without effect (dropped by the converter)')
    only_theirs = sorted(set(theirs) - set(ours))
    only_ours = sorted(set(ours) - set(theirs))
    shapes = sorted(n for n in set(ours) & set(theirs) if ours[n] != theirs[n])
    if not (only_theirs or only_ours or shapes):
        print(f"trainable sets: identical ({len(ours):,} tensors, "
              f"{sum(math.prod(s) for s in ours.values()):,} parameters) "
              "apart from the converter's dropped keys")
        return
    for what, names in (('trainable in theirs only',
                         only_theirs), ('trainable in ours only', only_ours),
                        ('shapes differ', shapes)):
        for name in names:
            print(f'  {what}: {name}')
    raise SystemExit("The authors' trainable set differs from ours (listed "
                     'above)')


def main():
    args = parse_args()
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model_cfg = copy.deepcopy(cfg.model)
    finetune = model_cfg.get('finetune_cfg') or {}
    unused = list(finetune.get('unused') or [])
    if finetune:
        model_cfg.finetune_cfg.unused = []  # counted, then frozen below
    model = MODELS.build(model_cfg)  # no init_weights(): no weights read
    as_authors = {
        n: tuple(p.shape)
        for n, p in model.named_parameters() if p.requires_grad
    }
    authors = sum(math.prod(s) for s in as_authors.values())
    extra = {
        path: count_parameters(model.get_submodule(path))[1]
        for path in unused
    }
    apply_finetune_cfg(model, dict(unused=unused))
    lora = finetune.get('lora')
    print(f'{args.config}')
    print(f"LoRA: {'rank %d' % lora.get('rank', 16) if lora else 'off'}")
    print(f"{'component':<40}{'total':>16}{'trainable':>16}")
    for name, total, trainable in component_rows(model):
        print(f'{name:<40}{total:>16,}{trainable:>16,}')
    label = "authors' trainable count"
    print(f"{label:<40}{'':>16}{authors:>16,}")
    for name, n in extra.items():
        if n:
            print(f'  + {name} ({n:,}): no gradient, frozen here')
    if not args.compare_authors:
        return
    del model  # theirs is as large: free ours first
    gc.collect()
    if cfg.model.type == 'RSRefSeg2':
        compare_rsrefseg2_authors(cfg.model.to_dict(), as_authors)
        return
    from mmrsrefseg.testing import build_authors_from_config
    ref = build_authors_from_config(cfg.model.to_dict())
    total = sum(p.numel() for p in ref.parameters())
    trainable = sum(p.numel() for p in ref.parameters() if p.requires_grad)
    label = "authors' composition (built)"
    print(f'{label:<40}{total:>16,}{trainable:>16,}')


if __name__ == '__main__':
    main()
