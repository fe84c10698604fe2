"""Generate a seeded synthetic dataset in the native RRSIS-D layout.

The data are built so that a referring segmentation model can only score well
if it follows the referring expression: every image holds several objects
drawn from a few RRSIS-D categories, every object is the target of exactly one
expression (as in RRSIS-D), and each expression is the shortest template that
singles out its object in that image (category, then colour or relative size,
then relative position). A model that ignores the text can at best segment all
objects of an image, i.e. an oIoU of about ``1 / objects per image``.

A ``control`` split re-uses every test object's mask with the expression of a
*different* object of the same image. A model that follows the text segments
the other object there (IoU 0, the objects never overlap); a model that
ignores the text scores the same on ``test`` and ``control``.

Output (``OUT_DIR``)::

    rrsisd/refs(unc).p              pickle (protocol 2), list of refs
    rrsisd/instances.json           images / annotations / 20 categories
    images/rrsisd/JPEGImages/NNNNN.jpg
    datainfo/rrsisd_{split}.jsonl   only with --jsonl (authors' JSONL form)

Record formats follow the real RRSIS-D files: an annotation is ``{'bbox':
[x1, y1, x2, y2] (inclusive pixel indices), 'categories_id' (sic), 'id',
'image_id', 'segmentation': [{'size': [h, w], 'counts': str}], 'area'}`` with
COCO compressed RLE (pycocotools) and ``area`` the mask's pixel count (in
real RRSIS-D ``area`` is not a pixel count); a ref is ``{'image_id',
'split', 'sentences': [{'tokens', 'raw', 'sent_id', 'sent'}], 'file_name',
'category_id', 'ann_id', 'sent_ids', 'ref_id'}``. Image ids count from 1
over train, val, test (file ``{id:05d}.jpg``); a train/val/test ref has
``ref_id == sent_id == ann_id``; control refs get new ids after the last
annotation id. A control ref's ``category_id`` is that of its ``ann_id`` (the
mask), not of the object its expression describes.

Images of a split are generated from ``SeedSequence([seed, split, index])``,
so a run is byte-identical for a given seed and the test images do not change
when ``--num-train`` changes.

Example::

    python tools/dataset_converters/make_synthetic_rrsisd.py data/synth \\
        --num-train 800 --num-val 60 --num-test 120 --img-size 256 --seed 0
"""
import argparse
import json
import os
import os.path as osp
import pickle
import sys
from collections import Counter

import cv2
import numpy as np
from pycocotools import mask as mask_utils

#: The 20 RRSIS-D categories with their real ids (``instances.json``).
RRSISD_CATEGORIES = ('Expressway-Service-area', 'Expressway-toll-station',
                     'airplane', 'airport', 'baseballfield', 'basketballcourt',
                     'bridge', 'chimney', 'dam', 'golffield',
                     'groundtrackfield', 'harbor', 'overpass', 'ship',
                     'stadium', 'storagetank', 'tenniscourt', 'trainstation',
                     'vehicle', 'windmill')
CATEGORY_IDS = {name: i for i, name in enumerate(RRSISD_CATEGORIES)}

#: RGB colours of object surfaces, named as in the expressions.
COLOURS = {
    'red': (205, 40, 40),
    'green': (45, 175, 60),
    'blue': (40, 85, 215),
    'white': (238, 238, 232),
    'yellow': (232, 205, 40),
}

#: Drawn categories: phrase in expressions, length range in pixels on a
#: 256-pixel image (diameter, length or span) and allowed colours.
SHAPES = {
    'storagetank': ('storage tank', (18, 56), tuple(COLOURS)),
    'vehicle': ('vehicle', (16, 30), tuple(COLOURS)),
    'tenniscourt': ('tennis court', (34, 70), ('red', 'green', 'blue')),
    'ship': ('ship', (28, 70), tuple(COLOURS)),
    'airplane': ('airplane', (32, 70), tuple(COLOURS)),
    'windmill': ('windmill', (32, 64), tuple(COLOURS)),
}
SHAPE_NAMES = tuple(SHAPES)

#: Background base colours (RGB): vegetation, soil, concrete, dry grass.
BACKGROUNDS = ((92, 108, 74), (124, 106, 82), (114, 114, 110), (128, 122, 92))
#: Road colours (RGB): asphalt, dirt.
ROADS = ((88, 88, 86), (168, 152, 126))

SPLITS = ('train', 'val', 'test')
SPLIT_CODES = {'train': 0, 'val': 1, 'test': 2}

#: An object is "larger"/"smaller" only if its area differs by this factor
#: from every other candidate.
SIZE_RATIO = 1.8
#: An object is "on the left" etc. only if its centroid is at least this
#: fraction of the image size beyond every other candidate's and lies in
#: that half of the image.
POSITION_MARGIN = 0.15
POSITIONS = {
    'left': 'on the left',
    'right': 'on the right',
    'top': 'at the top',
    'bottom': 'at the bottom',
}
ARTICLES = ('the', ) * 6 + ('The', ) * 2 + ('A', 'a')

# detail labels inside an object: darker, white paint, lighter
_DARK, _PAINT, _LIGHT = 1, 2, 3


def parse_args(argv=None):
    """Parse the command line.

    Args:
        argv (list[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        argparse.Namespace: ``out_dir``, ``num_train``, ``num_val``,
        ``num_test`` (images per split), ``img_size`` (pixels), ``seed``,
        ``objects_per_image`` ([min, max]) and ``jsonl``.
    """
    parser = argparse.ArgumentParser(
        description='Generate a seeded synthetic referring remote sensing '
        'segmentation dataset in the native RRSIS-D layout, with a '
        '"control" split (test masks paired with the expression of '
        'another object of the same image).')
    parser.add_argument('out_dir', help='output root directory')
    parser.add_argument(
        '--num-train', type=int, default=800, help='training images')
    parser.add_argument(
        '--num-val', type=int, default=60, help='validation images')
    parser.add_argument(
        '--num-test', type=int, default=120, help='test images')
    parser.add_argument(
        '--img-size',
        type=int,
        default=256,
        help='image height and width in pixels (>= 96)')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument(
        '--objects-per-image',
        type=int,
        nargs=2,
        default=[2, 4],
        metavar=('MIN', 'MAX'),
        help='inclusive range of objects per image (2 <= MIN <= MAX <= 6)')
    parser.add_argument(
        '--jsonl',
        action='store_true',
        help='also write datainfo/rrsisd_{split}.jsonl (authors\' form)')
    args = parser.parse_args(argv)
    for name in ('num_train', 'num_val', 'num_test'):
        if getattr(args, name) < 0:
            parser.error(f'--{name.replace("_", "-")} must be >= 0, got '
                         f'{getattr(args, name)}')
    if args.img_size < 96:
        parser.error(f'--img-size must be >= 96, got {args.img_size}')
    if args.seed < 0:
        parser.error(f'--seed must be >= 0, got {args.seed}')
    lo, hi = args.objects_per_image
    if not 2 <= lo <= hi <= 6:
        parser.error('--objects-per-image needs 2 <= MIN <= MAX <= 6, got '
                     f'{lo} {hi}')
    return args


class ProgressBar:
    """Minimal text progress bar on stderr (stdlib only).

    Args:
        total (int): Number of steps.
        width (int): Bar width in characters.
    """

    def __init__(self, total, width=30):
        self.total = max(total, 1)
        self.width = width
        self.done = 0

    def update(self):
        """Advance by one step and redraw."""
        self.done += 1
        filled = self.width * self.done // self.total
        sys.stderr.write(f'\r[{"#" * filled}{"." * (self.width - filled)}] '
                         f'{self.done}/{self.total} images')
        if self.done >= self.total:
            sys.stderr.write('\n')
        sys.stderr.flush()


# --------------------------------------------------------------------------
# drawing
# --------------------------------------------------------------------------
_SHIFT = 4  # cv2 sub-pixel bits
_ONE = 1 << _SHIFT


def _fix(points):
    """Float (N, 2) xy points -> int32 fixed-point for cv2 ``shift``."""
    return np.round(np.asarray(points, np.float64) * _ONE).astype(np.int32)


def _local_to_image(cx, cy, angle, uv):
    """Rotate/translate object-local (u along axis, v across) points.

    Args:
        cx, cy (float): Object centre in pixels.
        angle (float): Axis angle in radians (image x to image y).
        uv (array-like): Points of shape (N, 2) in pixels.

    Returns:
        np.ndarray: Image xy points of shape (N, 2), float64.
    """
    uv = np.asarray(uv, np.float64)
    c, s = np.cos(angle), np.sin(angle)
    x = cx + uv[:, 0] * c - uv[:, 1] * s
    y = cy + uv[:, 0] * s + uv[:, 1] * c
    return np.stack([x, y], axis=1)


def _poly(canvas, cx, cy, angle, uv, value):
    cv2.fillPoly(
        canvas, [_fix(_local_to_image(cx, cy, angle, uv))],
        value,
        lineType=cv2.LINE_8,
        shift=_SHIFT)


def _rect(length, width, u0=0.0, v0=0.0):
    hl, hw = length / 2, width / 2
    return [(u0 - hl, v0 - hw), (u0 + hl, v0 - hw), (u0 + hl, v0 + hw),
            (u0 - hl, v0 + hw)]


def _circle(canvas, cx, cy, radius, value, thickness=-1):
    cv2.circle(
        canvas, (int(round(cx * _ONE)), int(round(cy * _ONE))),
        int(round(radius * _ONE)),
        value,
        thickness=thickness,
        lineType=cv2.LINE_8,
        shift=_SHIFT)


def _line(canvas, cx, cy, angle, p, q, value, thickness):
    a, b = _fix(_local_to_image(cx, cy, angle, [p, q]))
    cv2.line(
        canvas,
        tuple(int(t) for t in a),
        tuple(int(t) for t in b),
        value,
        thickness=thickness,
        lineType=cv2.LINE_8,
        shift=_SHIFT)


def draw_shape(category, cx, cy, length, angle, size):
    """Rasterise one object with cv2 primitives.

    The mask is the union of the filled primitives (``cv2.LINE_8``, no
    anti-aliasing); the image is later painted exactly on the mask's pixels,
    so the mask is the exact ground truth.

    Args:
        category (str): One of ``SHAPES``.
        cx, cy (float): Centre in pixels.
        length (float): Diameter / length / span in pixels.
        angle (float): Orientation in radians.
        size (int): Image height and width in pixels.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``mask`` of shape (size, size), uint8
        in {0, 1}, and ``detail`` of shape (size, size), uint8 labels
        (0 plain, 1 darker, 2 white paint, 3 lighter), zero outside the mask.

    Raises:
        KeyError: If ``category`` is not a drawn category.
    """
    mask = np.zeros((size, size), np.uint8)
    detail = np.zeros((size, size), np.uint8)
    L = float(length)
    thin = max(1, int(round(L / 45)))
    if category == 'storagetank':
        r = L / 2
        _circle(mask, cx, cy, r, 1)
        _circle(detail, cx, cy, 0.72 * r, _DARK, thickness=thin)
        _circle(detail, cx, cy, 0.14 * r, _DARK)
        _circle(detail, cx - 0.35 * r, cy - 0.35 * r, 0.18 * r, _LIGHT)
    elif category == 'vehicle':
        w = 0.46 * L
        _poly(mask, cx, cy, angle, _rect(L, w), 1)
        _poly(detail, cx, cy, angle, _rect(0.14 * L, 0.8 * w, 0.2 * L), _DARK)
        _poly(detail, cx, cy, angle, _rect(0.1 * L, 0.8 * w, -0.3 * L), _DARK)
    elif category == 'tenniscourt':
        w = 0.5 * L
        _poly(mask, cx, cy, angle, _rect(L, w), 1)
        hl, hw = 0.42 * L, 0.38 * w
        # white lines: net always; outline and service lines only where the
        # court is big enough for the surface colour to stay dominant
        _line(detail, cx, cy, angle, (0, -hw), (0, hw), _PAINT, thin)
        if L >= 24:
            corners = [(-hl, -hw), (hl, -hw), (hl, hw), (-hl, hw)]
            for k in range(4):
                _line(detail, cx, cy, angle, corners[k], corners[(k + 1) % 4],
                      _PAINT, thin)
        if L >= 40:
            for su in (-0.25 * L, 0.25 * L):
                _line(detail, cx, cy, angle, (su, -hw), (su, hw), _PAINT, thin)
            _line(detail, cx, cy, angle, (-0.25 * L, 0), (0.25 * L, 0), _PAINT,
                  thin)
    elif category == 'ship':
        w = 0.26 * L
        hull = [(-L / 2, -w / 2), (0.22 * L, -w / 2), (L / 2, 0),
                (0.22 * L, w / 2), (-L / 2, w / 2)]
        _poly(mask, cx, cy, angle, hull, 1)
        _poly(detail, cx, cy, angle, _rect(0.22 * L, 0.6 * w, -0.3 * L), _DARK)
        _poly(detail, cx, cy, angle, _rect(0.4 * L, 0.18 * w, 0.1 * L), _LIGHT)
    elif category == 'airplane':
        fw = 0.14 * L
        _poly(mask, cx, cy, angle, _rect(0.86 * L, fw, -0.07 * L), 1)
        nose = _local_to_image(cx, cy, angle, [(0.36 * L, 0)])[0]
        _circle(mask, nose[0], nose[1], fw / 2, 1)
        for sgn in (-1, 1):
            wing = [(0.08 * L, sgn * fw / 2), (-0.14 * L, sgn * 0.48 * L),
                    (-0.24 * L, sgn * 0.48 * L), (-0.12 * L, sgn * fw / 2)]
            tail = [(-0.36 * L, sgn * fw / 2), (-0.47 * L, sgn * 0.19 * L),
                    (-0.5 * L, sgn * 0.19 * L), (-0.5 * L, sgn * fw / 2)]
            _poly(mask, cx, cy, angle, wing, 1)
            _poly(mask, cx, cy, angle, tail, 1)
            _poly(detail, cx, cy, angle,
                  _rect(0.09 * L, 0.06 * L, -0.05 * L, sgn * 0.2 * L), _DARK)
        _poly(detail, cx, cy, angle, _rect(0.06 * L, 0.6 * fw, 0.33 * L),
              _DARK)
    elif category == 'windmill':
        hub = 0.09 * L
        for k in range(3):
            a = angle + k * 2 * np.pi / 3
            blade = [(0, -0.065 * L), (0.5 * L, -0.022 * L),
                     (0.5 * L, 0.022 * L), (0, 0.065 * L)]
            _poly(mask, cx, cy, a, blade, 1)
            tip = [(0.3 * L, -0.03 * L), (0.5 * L, -0.022 * L),
                   (0.5 * L, 0.022 * L), (0.3 * L, 0.03 * L)]
            _poly(detail, cx, cy, a, tip, _LIGHT)
        _circle(mask, cx, cy, hub, 1)
        _circle(detail, cx, cy, hub, _DARK)
    else:
        raise KeyError(f'unknown synthetic category {category!r}, expected '
                       f'one of {SHAPE_NAMES}')
    detail[mask == 0] = 0
    return mask, detail


def _smooth_noise(rng, size, cells, channels):
    small = rng.standard_normal((cells, cells, channels)).astype(np.float32)
    big = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    return big.reshape(size, size, channels)


def make_background(rng, size):
    """Paint an aerial-looking background.

    Smooth multi-octave noise around one of ``BACKGROUNDS``, a few rotated
    fields with crop-row stripes and zero to two roads.

    Args:
        rng (np.random.Generator): Random source.
        size (int): Height and width in pixels.

    Returns:
        np.ndarray: RGB image of shape (size, size, 3), float32, 0-255.
    """
    s = size / 256
    base = np.array(BACKGROUNDS[rng.integers(len(BACKGROUNDS))], np.float32)
    base = base + rng.uniform(-8, 8, 3).astype(np.float32)
    img = np.broadcast_to(base, (size, size, 3)).copy()
    img += 14 * _smooth_noise(rng, size, 4, 1)
    img += 4 * _smooth_noise(rng, size, 4, 3)
    img += 7 * _smooth_noise(rng, size, max(4, size // 16), 1)
    img += 3 * rng.standard_normal((size, size, 1)).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for _ in range(int(rng.integers(1, 5))):
        field = np.zeros((size, size), np.uint8)
        cx, cy = rng.uniform(0, size, 2)
        angle = rng.uniform(0, np.pi)
        length, width = rng.uniform(50, 150, 2) * s
        _poly(field, cx, cy, angle, _rect(length, width), 1)
        tint = rng.uniform(-20, 20, 3).astype(np.float32)
        period = rng.uniform(4, 9) * s
        stripes = 4 * np.sin(
            (xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
        on = field.astype(bool)
        img[on] += tint + stripes[on][:, None]
    for _ in range(int(rng.integers(0, 3))):
        road = np.zeros((size, size), np.uint8)
        if rng.random() < 0.5:
            pts = [(0, rng.uniform(0, size)), (size, rng.uniform(0, size))]
        else:
            pts = [(rng.uniform(0, size), 0), (rng.uniform(0, size), size)]
        mid = (np.mean([p[0] for p in pts]) + rng.uniform(-30, 30) * s,
               np.mean([p[1] for p in pts]) + rng.uniform(-30, 30) * s)
        thick = max(2, int(round(rng.uniform(3, 7) * s)))
        cv2.polylines(
            road, [_fix([pts[0], mid, pts[1]])],
            False,
            1,
            thickness=thick,
            lineType=cv2.LINE_8,
            shift=_SHIFT)
        colour = np.array(ROADS[0 if rng.random() < 0.6 else 1], np.float32)
        on = road.astype(bool)
        img[on] = 0.25 * img[on] + 0.75 * colour
    return img


def render(rng, size, objects):
    """Draw the background, shadows and objects of one image.

    Args:
        rng (np.random.Generator): Random source.
        size (int): Height and width in pixels.
        objects (list[dict]): Objects with ``mask``/``detail`` (size, size)
            uint8 arrays and ``colour`` (name in ``COLOURS``).

    Returns:
        np.ndarray: RGB image of shape (size, size, 3), uint8.
    """
    img = make_background(rng, size)
    union = np.zeros((size, size), bool)
    for obj in objects:
        union |= obj['mask'].astype(bool)
    # shadows: every object casts one in the same direction, onto the
    # background only
    off = max(1, int(round(3 * size / 256)))
    for obj in objects:
        shadow = np.zeros_like(union)
        shadow[off:, off:] = obj['mask'][:-off, :-off].astype(bool)
        shadow &= ~union
        img[shadow] *= 0.55
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for obj in objects:
        on = obj['mask'].astype(bool)
        colour = np.array(COLOURS[obj['colour']], np.float32)
        colour = colour + rng.uniform(-12, 12, 3).astype(np.float32)
        light = 1 + 0.05 * _smooth_noise(rng, size, 8, 1)[..., 0]
        light += 0.08 * ((size - xx - yy) / size)  # lit from the top left
        surface = colour[None, None, :] * light[..., None]
        detail = obj['detail']
        surface[detail == _DARK] *= 0.6
        surface[detail == _PAINT] = 245
        lighter = detail == _LIGHT
        surface[lighter] = 0.6 * surface[lighter] + 0.4 * 250
        img[on] = surface[on]
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------
# referring expressions
# --------------------------------------------------------------------------
def size_word(obj, group):
    """Relative size word that singles ``obj`` out of ``group``.

    Args:
        obj (dict): Object with ``area`` (pixels).
        group (list[dict]): Candidate objects, ``obj`` included.

    Returns:
        str | None: ``'larger'``/``'smaller'`` (two candidates),
        ``'largest'``/``'smallest'`` (more), or None if ``obj``'s area is
        not ``SIZE_RATIO`` times above/below every other candidate's.
    """
    others = [o['area'] for o in group if o is not obj]
    if not others:
        return None
    pair = len(others) == 1
    if obj['area'] >= SIZE_RATIO * max(others):
        return 'larger' if pair else 'largest'
    if SIZE_RATIO * obj['area'] <= min(others):
        return 'smaller' if pair else 'smallest'
    return None


def position_words(obj, group, size):
    """Positions (``POSITIONS`` keys) that single ``obj`` out of ``group``.

    ``obj`` is e.g. ``'left'`` if its centroid is left of the image centre
    and at least ``POSITION_MARGIN * size`` pixels left of every other
    candidate's centroid.

    Args:
        obj (dict): Object with ``centroid`` (x, y) in pixels.
        group (list[dict]): Candidate objects, ``obj`` included.
        size (int): Image size in pixels.

    Returns:
        list[str]: Valid positions, possibly empty (also when ``group`` has
        only ``obj``: a position is then not needed).
    """
    others = [o['centroid'] for o in group if o is not obj]
    if not others:
        return []
    margin = POSITION_MARGIN * size
    x, y = obj['centroid']
    ox = [c[0] for c in others]
    oy = [c[1] for c in others]
    found = []
    if x < size / 2 and x + margin <= min(ox):
        found.append('left')
    if x > size / 2 and x - margin >= max(ox):
        found.append('right')
    if y < size / 2 and y + margin <= min(oy):
        found.append('top')
    if y > size / 2 and y - margin >= max(oy):
        found.append('bottom')
    return found


def phrase(desc, article='the'):
    """Render a description as a referring expression.

    Args:
        desc (dict): ``category`` (``SHAPES`` key) and optional ``colour``,
            ``size`` (size word) and ``position`` (``POSITIONS`` key).
        article (str): Leading article; superlatives always take "the".

    Returns:
        str: E.g. ``'the larger red ship on the left'``.
    """
    if desc.get('size') in ('largest', 'smallest'):
        article = 'The' if article[0].isupper() else 'the'
    words = [article]
    if desc.get('size'):
        words.append(desc['size'])
    if desc.get('colour'):
        words.append(desc['colour'])
    words.append(SHAPES[desc['category']][0])
    if desc.get('position'):
        words.append(POSITIONS[desc['position']])
    return ' '.join(words)


def resolve(desc, objects, size):
    """Objects of an image that a description refers to.

    Category and colour filter the objects; size and position then pick the
    one object of the filtered group that ``size_word`` /
    ``position_words`` single out.

    Args:
        desc (dict): As in ``phrase``.
        objects (list[dict]): All objects of the image.
        size (int): Image size in pixels.

    Returns:
        list[dict]: The referred objects (exactly one for a valid
        expression).
    """
    group = [o for o in objects if o['category'] == desc['category']]
    if desc.get('colour'):
        group = [o for o in group if o['colour'] == desc['colour']]
    if desc.get('size'):
        group = [o for o in group if size_word(o, group) == desc['size']]
    if desc.get('position'):
        group = [
            o for o in group
            if desc['position'] in position_words(o, group, size)
        ]
    return group


def describe(obj, objects, size, rng):
    """Shortest unique description of ``obj`` among ``objects``.

    Candidates: category alone; + colour; + size; + position; + colour and
    size; + colour and position. The candidates with the fewest words are
    kept and one is drawn at random; each is verified with ``resolve``.

    Args:
        obj (dict): The target object.
        objects (list[dict]): All objects of the image.
        size (int): Image size in pixels.
        rng (np.random.Generator): Random source for ties.

    Returns:
        dict | None: The description, or None if none is unique.
    """
    same_cat = [o for o in objects if o['category'] == obj['category']]
    same_col = [o for o in same_cat if o['colour'] == obj['colour']]
    cat, col = obj['category'], obj['colour']
    cands = [dict(category=cat), dict(category=cat, colour=col)]
    for group, base in ((same_cat, {}), (same_col, dict(colour=col))):
        word = size_word(obj, group)
        if word:
            cands.append(dict(category=cat, size=word, **base))
        for pos in position_words(obj, group, size):
            cands.append(dict(category=cat, position=pos, **base))
    cands = [d for d in cands if resolve(d, objects, size) == [obj]]
    if not cands:
        return None
    shortest = min(len(phrase(d).split()) for d in cands)
    cands = [d for d in cands if len(phrase(d).split()) == shortest]
    return cands[int(rng.integers(len(cands)))]


# --------------------------------------------------------------------------
# one image
# --------------------------------------------------------------------------
def _sample_attributes(rng, n, size):
    """Draw category, colour and length of ``n`` objects.

    With probability 0.8 at least two objects share a category (so the
    category word alone rarely suffices); inside that group the colours are
    shared with probability 0.35 and then, half of the time, the lengths
    differ by a clear factor (so size or position must be used).
    """
    s = size / 256
    if rng.random() < 0.8:
        shared = SHAPE_NAMES[rng.integers(len(SHAPE_NAMES))]
        k = 2 if n == 2 or rng.random() < 0.7 else 3
        cats = [shared] * k
        cats += [
            SHAPE_NAMES[rng.integers(len(SHAPE_NAMES))] for _ in range(n - k)
        ]
    else:
        cats = [SHAPE_NAMES[rng.integers(len(SHAPE_NAMES))] for _ in range(n)]
    colours, lengths = [], []
    for cat in cats:
        allowed = SHAPES[cat][2]
        colours.append(allowed[rng.integers(len(allowed))])
        lo, hi = SHAPES[cat][1]
        lengths.append(rng.uniform(lo, hi) * s)
    group = [i for i, c in enumerate(cats) if c == cats[0]]
    if len(group) >= 2 and rng.random() < 0.35:
        for i in group[1:]:
            colours[i] = colours[group[0]]
        if rng.random() < 0.5:
            lo, hi = SHAPES[cats[0]][1]
            small = rng.uniform(lo, lo + 0.25 * (hi - lo)) * s
            lengths[group[0]] = small
            for i in group[1:]:
                lengths[i] = min(hi * s, small * rng.uniform(1.5, 1.9))
    order = rng.permutation(n)
    return [(cats[i], colours[i], lengths[i]) for i in order]


def _place(rng, size, attrs):
    """Non-overlapping centres (bounding circles + gap); None on failure."""
    placed = []
    gap = 4 * size / 256
    for cat, colour, length in attrs:
        radius = 0.57 * length
        lo, hi = radius + 2, size - radius - 2
        for _ in range(200):
            cx, cy = rng.uniform(lo, hi, 2)
            if all(
                    np.hypot(cx - p['cx'], cy - p['cy']) >= radius +
                    p['radius'] + gap for p in placed):
                break
        else:
            return None
        placed.append(
            dict(
                category=cat,
                colour=colour,
                length=float(length),
                cx=float(cx),
                cy=float(cy),
                radius=radius,
                angle=float(rng.uniform(0, 2 * np.pi))))
    return placed


def generate_image(rng, size, num_objects, max_tries=200):
    """Generate one image with uniquely describable objects.

    Args:
        rng (np.random.Generator): Random source.
        size (int): Height and width in pixels.
        num_objects (tuple[int, int]): Inclusive range of object counts.
        max_tries (int): Layouts tried before giving up.

    Returns:
        tuple[np.ndarray, list[dict]]: RGB image (size, size, 3) uint8 and
        the objects, each with ``category``, ``colour``, ``mask``
        (size, size) uint8, ``area``, ``bbox`` [x1, y1, x2, y2] (inclusive),
        ``centroid`` (x, y) and ``desc``/``sent`` (its expression).

    Raises:
        RuntimeError: If no valid layout was found in ``max_tries``.
    """
    for _ in range(max_tries):
        n = int(rng.integers(num_objects[0], num_objects[1] + 1))
        objects = _place(rng, size, _sample_attributes(rng, n, size))
        if objects is None:
            continue
        union = np.zeros((size, size), np.int32)
        for obj in objects:
            obj['mask'], obj['detail'] = draw_shape(obj['category'], obj['cx'],
                                                    obj['cy'], obj['length'],
                                                    obj['angle'], size)
            union += obj['mask']
            ys, xs = np.nonzero(obj['mask'])
            obj['area'] = int(xs.size)
            obj['bbox'] = [
                int(xs.min()),
                int(ys.min()),
                int(xs.max()),
                int(ys.max())
            ]
            obj['centroid'] = (float(xs.mean()), float(ys.mean()))
        if union.max() > 1:  # cannot happen with the gap; never keep it
            continue
        descs = [describe(o, objects, size, rng) for o in objects]
        if any(d is None for d in descs):
            continue
        for obj, desc in zip(objects, descs):
            obj['desc'] = desc
            obj['sent'] = phrase(desc, ARTICLES[rng.integers(len(ARTICLES))])
        image = render(rng, size, objects)
        return image, objects
    raise RuntimeError(f'no valid layout of {num_objects} objects on a '
                       f'{size}x{size} image after {max_tries} tries')


# --------------------------------------------------------------------------
# dataset
# --------------------------------------------------------------------------
def _rle(mask):
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {
        'size': [int(v) for v in rle['size']],
        'counts': rle['counts'].decode('ascii')
    }


def _baseline_counts(objects, target, named):
    """Intersection and union (pixels) of two reference predictors.

    ``blind`` ignores the text and predicts every object of the image (the
    best a text-blind model can do: ``1 / objects`` of an image);
    ``category`` reads only the category word and predicts every object of
    the named object's category.

    Args:
        objects (list[dict]): All objects of the image (``area``,
            ``category``); masks are disjoint.
        target (dict): The ground-truth object.
        named (dict): The object the expression describes (``target`` on
            test, another object on control).

    Returns:
        dict[str, tuple[int, int]]: ``(I, U)`` per predictor.
    """
    same = [o for o in objects if o['category'] == named['category']]
    hit = any(o is target for o in same)
    cat_union = sum(o['area'] for o in same) + (0 if hit else target['area'])
    return dict(
        blind=(target['area'], sum(o['area'] for o in objects)),
        category=(target['area'] if hit else 0, cat_union))


def build(args):
    """Generate and write the dataset.

    Args:
        args (argparse.Namespace): From ``parse_args``.

    Returns:
        dict: Summary statistics (also printed by ``main``).
    """
    out = args.out_dir
    img_dir = osp.join(out, 'images', 'rrsisd', 'JPEGImages')
    ann_dir = osp.join(out, 'rrsisd')
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    counts = dict(train=args.num_train, val=args.num_val, test=args.num_test)
    images, annotations, refs, control = [], [], [], []
    image_id = ann_id = 0
    stats = dict(
        templates=Counter(),
        categories=Counter(),
        shared=0,
        baselines={
            split: dict(blind=[0, 0], category=[0, 0])
            for split in ('test', 'control')
        })
    bar = ProgressBar(sum(counts.values()))
    for split in SPLITS:
        for index in range(counts[split]):
            seq = np.random.SeedSequence(
                [args.seed, SPLIT_CODES[split], index])
            rng = np.random.default_rng(seq)
            image, objects = generate_image(rng, args.img_size,
                                            args.objects_per_image)
            image_id += 1
            file_name = f'{image_id:05d}.jpg'
            ok = cv2.imwrite(
                osp.join(img_dir, file_name),
                cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 95])
            if not ok:
                raise OSError(f'cv2.imwrite failed for '
                              f'{osp.join(img_dir, file_name)}')
            images.append(
                dict(
                    file_name=file_name,
                    height=args.img_size,
                    width=args.img_size,
                    id=image_id))
            cats = Counter(o['category'] for o in objects)
            cols = Counter(o['colour'] for o in objects)
            stats['shared'] += max(cats.values()) > 1 or max(cols.values()) > 1
            for obj in objects:
                ann_id += 1
                obj['ann_id'] = ann_id
                cat_id = CATEGORY_IDS[obj['category']]
                annotations.append(
                    dict(
                        bbox=obj['bbox'],
                        categories_id=cat_id,
                        id=ann_id,
                        image_id=image_id,
                        segmentation=[_rle(obj['mask'])],
                        area=obj['area']))
                refs.append(
                    _ref(image_id, split, obj['sent'], ann_id, file_name,
                         cat_id, ann_id))
                stats['categories'][obj['category']] += 1
                stats['templates'][_template(obj['desc'])] += 1
            if split == 'test':
                for k, obj in enumerate(objects):
                    # control: same mask, another object's expression
                    j = int(rng.integers(len(objects) - 1))
                    other = objects[j + (j >= k)]
                    control.append((image_id, file_name, obj, other))
                    for name, named in (('test', obj), ('control', other)):
                        counts_ = _baseline_counts(objects, obj, named)
                        for key, (i, u) in counts_.items():
                            stats['baselines'][name][key][0] += i
                            stats['baselines'][name][key][1] += u
            bar.update()
    next_id = ann_id
    for image_id_, file_name, obj, other in control:
        next_id += 1
        refs.append(
            _ref(image_id_, 'control', other['sent'], next_id, file_name,
                 CATEGORY_IDS[obj['category']], obj['ann_id']))
    instances = dict(
        images=images,
        annotations=annotations,
        categories=[
            dict(name=name, id=i) for i, name in enumerate(RRSISD_CATEGORIES)
        ])
    with open(osp.join(ann_dir, 'instances.json'), 'w') as f:
        json.dump(instances, f)
    with open(osp.join(ann_dir, 'refs(unc).p'), 'wb') as f:
        pickle.dump(refs, f, protocol=2)
    if args.jsonl:
        _write_jsonl(out, refs, annotations)
    return dict(
        images=counts,
        refs=Counter(r['split'] for r in refs),
        categories=stats['categories'],
        templates=stats['templates'],
        shared=stats['shared'] / max(len(images), 1),
        baselines={
            split: {
                key: 100.0 * i / max(u, 1)
                for key, (i, u) in per_split.items()
            }
            for split, per_split in stats['baselines'].items()
        })


def _ref(image_id, split, sent, sent_id, file_name, category_id, ann_id):
    return dict(
        image_id=image_id,
        split=split,
        sentences=[
            dict(tokens=sent.split(), raw=sent, sent_id=sent_id, sent=sent)
        ],
        file_name=file_name,
        category_id=category_id,
        ann_id=ann_id,
        sent_ids=[sent_id],
        ref_id=sent_id)


def _template(desc):
    parts = [k for k in ('colour', 'size', 'position') if desc.get(k)]
    return '+'.join(['category'] + parts)


def _write_jsonl(out, refs, annotations):
    """Write ``datainfo/rrsisd_{split}.jsonl``, one line per expression."""
    anns = {a['id']: a for a in annotations}
    lines = {}
    for ref in refs:
        ann = anns[ref['ann_id']]
        for sent in ref['sentences']:
            lines.setdefault(ref['split'], []).append(
                json.dumps(
                    dict(
                        split=ref['split'],
                        image_id=ref['image_id'],
                        sent=sent['sent'],
                        file_name=ref['file_name'],
                        category_id=ref['category_id'],
                        category_name=RRSISD_CATEGORIES[ref['category_id']],
                        ann_id=ref['ann_id'],
                        bbox=ann['bbox'],
                        segmentation=ann['segmentation'],
                        area=ann['area'])))
    os.makedirs(osp.join(out, 'datainfo'), exist_ok=True)
    for split in SPLITS + ('control', ):
        with open(osp.join(out, 'datainfo', f'rrsisd_{split}.jsonl'),
                  'w') as f:
            f.write(''.join(line + '\n' for line in lines.get(split, [])))


def main(argv=None):
    """Command-line entry point; prints a summary."""
    args = parse_args(argv)
    summary = build(args)
    print(f'wrote {args.out_dir}')
    for split in SPLITS + ('control', ):
        n_img = summary['images'].get(split, summary['images']['test'])
        print(f'  {split:8s} images {n_img:5d}  refs '
              f'{summary["refs"].get(split, 0):5d}')
    print('  objects per category: ' +
          ', '.join(f'{k} {v}'
                    for k, v in sorted(summary['categories'].items())))
    print('  expression templates: ' +
          ', '.join(f'{k} {v}'
                    for k, v in sorted(summary['templates'].items())))
    print(f'  images with a shared category or colour: '
          f'{100 * summary["shared"]:.1f}%')
    base = summary['baselines']
    print(f'  oIoU of text-blind "every object": test '
          f'{base["test"]["blind"]:.1f}, control '
          f'{base["control"]["blind"]:.1f}')
    print(f'  oIoU of category-word-only "every object of the named '
          f'category": test {base["test"]["category"]:.1f}, control '
          f'{base["control"]["category"]:.1f}')
    print('  oIoU of a perfect text-following model: test 100.0, control 0.0')


if __name__ == '__main__':
    main()
