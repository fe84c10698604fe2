# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Write tiny random CLIP/SigLIP and SAM checkpoints in the real formats.

The architecture comes from a config (``model.backbone.config`` and
``model.decode_head``), so the checkpoints always match it:

- ``<out>/<clip dir>``: ``CLIPModel`` / ``SiglipModel`` saved with
  ``save_pretrained`` plus the real OpenAI CLIP BPE tokenizer
  (``vocab.json`` with 49,408 entries and ``merges.txt``), rebuilt from the
  vocabulary file that mmsegmentation ships
  (``mmseg/utils/bpe_simple_vocab_16e6.txt.gz``, identical to OpenAI's), or
  for SigLIP a real-format SentencePiece tokenizer (``spiece.model`` trained
  on the fly + ``tokenizer_config.json``);
- ``<out>/<sam file>``: a ``segment_anything`` ``Sam`` state dict with the
  official key names (``image_encoder.*``, ``prompt_encoder.*``,
  ``mask_decoder.*``, ``pixel_mean``, ``pixel_std``).

The paths written are the config's ``model.backbone.pretrained`` and
``model.decode_head.checkpoint``, so the config then loads them through the
same ``init_weights`` path as real checkpoints.

Example::

    python tools/misc/make_tiny_checkpoints.py \
        configs/rsrefseg_tiny_synthetic.py
"""
import argparse
import gzip
import os
import os.path as osp

import torch
from mmengine.config import Config, DictAction

import mmrsrefseg  # noqa: F401  (registers the modules)
from mmrsrefseg.utils.sam_import import import_segment_anything


def bytes_to_unicode():
    """OpenAI CLIP's reversible byte -> unicode character table.

    From ``clip/simple_tokenizer.py`` (MIT licence), also in
    ``mmseg/utils/tokenizer.py``.
    """
    bs = list(range(ord('!'),
                    ord('~') + 1)) + list(range(
                        ord('¡'),
                        ord('¬') + 1)) + list(range(ord('®'),
                                                    ord('ÿ') + 1))
    cs = bs[:]
    n = 0
    for b in range(2**8):
        if b not in bs:
            bs.append(b)
            cs.append(2**8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def build_clip_tokenizer(out_dir: str, model_max_length: int = 77):
    """Save the real CLIP BPE tokenizer (``CLIPTokenizer``) into ``out_dir``.

    The vocabulary is rebuilt exactly as OpenAI's ``SimpleTokenizer`` does:
    256 byte symbols, the same with ``</w>``, 48,894 merges, then
    ``<|startoftext|>`` (49406) and ``<|endoftext|>`` (49407, also padding).

    Returns:
        CLIPTokenizer: The tokenizer loaded back from ``out_dir``.

    Raises:
        RuntimeError: If the round trip does not give 49,408 entries.
    """
    import mmseg.utils
    from transformers import AutoTokenizer, CLIPTokenizer
    bpe_path = osp.join(
        osp.dirname(mmseg.utils.__file__), 'bpe_simple_vocab_16e6.txt.gz')
    merges = gzip.open(bpe_path).read().decode('utf-8').split('\n')
    merges = merges[1:49152 - 256 - 2 + 1]
    merges = [tuple(m.split()) for m in merges]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + '</w>' for v in vocab]
    vocab += [''.join(m) for m in merges]
    vocab += ['<|startoftext|>', '<|endoftext|>']
    os.makedirs(out_dir, exist_ok=True)
    # transformers 5: CLIPTokenizer(vocab=..., merges=...) (tokenizers
    # backend); save_pretrained writes tokenizer.json, vocab.json, merges.txt
    tok = CLIPTokenizer(
        vocab={
            token: i
            for i, token in enumerate(vocab)
        },
        merges=merges,
        model_max_length=model_max_length,
        bos_token='<|startoftext|>',
        eos_token='<|endoftext|>',
        pad_token='<|endoftext|>',
        unk_token='<|endoftext|>')
    tok.save_pretrained(out_dir)
    loaded = AutoTokenizer.from_pretrained(out_dir)
    if len(loaded) != 49408:
        raise RuntimeError(f'CLIP tokenizer in {out_dir} has {len(loaded)} '
                           'entries instead of 49408')
    return loaded


def _expression_corpus():
    """Referring expressions in RRSIS-D's style (SentencePiece training)."""
    import itertools
    objects = ('airplane', 'airport', 'baseball field', 'basketball court',
               'bridge', 'chimney', 'dam', 'expressway service area',
               'expressway toll station', 'golf field', 'ground track field',
               'harbor', 'overpass', 'ship', 'stadium', 'storage tank',
               'tennis court', 'train station', 'vehicle', 'windmill')
    colours = ('', 'white ', 'gray ', 'red ', 'blue ', 'green ', 'dark ')
    sizes = ('', 'large ', 'small ', 'larger ', 'smaller ')
    places = ('', ' on the left', ' on the right', ' at the top',
              ' at the bottom', ' in the middle', ' next to the road',
              ' near the water')
    return [
        f'the {s}{c}{o}{p}'.strip()
        for o, c, s, p in itertools.product(objects, colours, sizes, places)
    ]


def build_siglip_tokenizer(out_dir: str,
                           vocab_size: int = 1000,
                           model_max_length: int = 64):
    """Save a SigLIP tokenizer in the real format into ``out_dir``.

    A small unigram ``spiece.model`` is trained with sentencepiece's own
    trainer on RRSIS-D-style expressions, with SigLIP's special ids
    (``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2, no BOS), then written by
    ``SiglipTokenizer.save_pretrained`` (``spiece.model``,
    ``tokenizer_config.json``, ``special_tokens_map.json``) exactly as the
    real ``google/siglip-*`` directories hold it.

    Args:
        out_dir (str): Destination directory (created).
        vocab_size (int): SentencePiece vocabulary size (at most the text
            tower's ``vocab_size``). Defaults to 1000.
        model_max_length (int): Tokenizer length limit. Defaults to 64.

    Returns:
        SiglipTokenizer: The tokenizer loaded back with ``AutoTokenizer``.

    Raises:
        RuntimeError: If the round trip does not give a SigLIP tokenizer.
    """
    import io

    import sentencepiece as spm
    from transformers import AutoTokenizer, SiglipTokenizer
    os.makedirs(out_dir, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_expression_corpus()),
        model_writer=model,
        model_type='unigram',
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        minloglevel=2)
    spiece = osp.join(out_dir, 'spiece.model')
    with open(spiece, 'wb') as f:
        f.write(model.getvalue())
    SiglipTokenizer(
        spiece, model_max_length=model_max_length).save_pretrained(out_dir)
    loaded = AutoTokenizer.from_pretrained(out_dir)
    if type(loaded).__name__ != 'SiglipTokenizer':
        raise RuntimeError(f'{out_dir} loads as {type(loaded).__name__}, '
                           'not SiglipTokenizer')
    return loaded


def save_clip(backbone_cfg: dict, out_dir: str, seed: int):
    """Save a random CLIP/SigLIP of ``backbone_cfg['config']`` + tokenizer."""
    from transformers import CLIPConfig, CLIPModel, SiglipConfig, SiglipModel
    torch.manual_seed(seed)
    if backbone_cfg['model_type'] == 'clip':
        model = CLIPModel(CLIPConfig(**backbone_cfg['config']))
    else:
        model = SiglipModel(SiglipConfig(**backbone_cfg['config']))
    model.save_pretrained(out_dir)
    # fresh random weights: drop a pretrain_tiny_clip.py record if present
    marker = osp.join(out_dir, 'mmrsrefseg_pretraining.json')
    if osp.exists(marker):
        os.remove(marker)
    text_cfg = model.config.text_config
    if backbone_cfg['model_type'] == 'clip':
        build_clip_tokenizer(out_dir, text_cfg.max_position_embeddings)
    else:
        build_siglip_tokenizer(out_dir, min(1000, text_cfg.vocab_size),
                               text_cfg.max_position_embeddings)
    return model


def save_sam(head_cfg: dict, out_file: str, seed: int):
    """Save a random SAM with official key names for ``head_cfg``."""
    from mmseg.registry import MODELS
    torch.manual_seed(seed)
    head_cfg = dict(head_cfg, checkpoint=None)
    head = MODELS.build(head_cfg)
    modeling, _ = import_segment_anything()
    sam = modeling.Sam(
        image_encoder=head.image_encoder,
        prompt_encoder=head.prompt_encoder,
        mask_decoder=head.mask_decoder,
        pixel_mean=head.pixel_mean.flatten().tolist(),
        pixel_std=head.pixel_std.flatten().tolist())
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    torch.save(sam.state_dict(), out_file)
    return sam


def parse_args():
    parser = argparse.ArgumentParser(
        description='Write tiny random CLIP (HF save_pretrained, real CLIP '
        'BPE tokenizer) and SAM (official .pth keys) checkpoints for the '
        "architecture of CONFIG, at the config's own weight paths.")
    parser.add_argument('config', help='config whose model to write')
    parser.add_argument(
        '--seed', type=int, default=0, help='random seed (default 0)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. model.backbone.pretrained=DIR '
        'model.decode_head.checkpoint=FILE to write elsewhere')
    parser.add_argument(
        '--force',
        action='store_true',
        help='overwrite existing checkpoints (default: keep them)')
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    backbone, head = cfg.model.backbone, cfg.model.decode_head
    clip_dir, sam_file = backbone.get('pretrained'), head.get('checkpoint')
    if not clip_dir or not sam_file:
        raise ValueError(f'{args.config} must set model.backbone.pretrained '
                         'and model.decode_head.checkpoint')
    if args.force or not osp.exists(osp.join(clip_dir, 'config.json')):
        save_clip(backbone.to_dict(), clip_dir, args.seed)
        print(f'wrote {backbone.model_type} checkpoint + tokenizer to '
              f'{clip_dir}')
    else:
        print(f'kept existing {clip_dir}')
    if args.force or not osp.exists(sam_file):
        save_sam(head.to_dict(), sam_file, args.seed + 1)
        print(f'wrote SAM checkpoint to {sam_file}')
    else:
        print(f'kept existing {sam_file}')


if __name__ == '__main__':
    main()
