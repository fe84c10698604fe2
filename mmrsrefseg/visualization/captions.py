# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Captions and colour bars of the pictures, rendered with matplotlib.

Text is laid out by :mod:`textwrap` (greedy word wrap, at most
``max_lines`` lines ending in ``…``) and drawn by matplotlib (Agg, no
pyplot) in DejaVu Sans Mono Bold, the monospaced font that ships with
matplotlib: with a fixed advance per character, wrapping by character
count is exact, and the pictures do not depend on the fonts installed.
Characters that the font lacks (emoji, CJK, control characters) are drawn
as ``�`` (U+FFFD) instead of being dropped. Colour bars are matplotlib
colour bars.

Each call draws on a ``Figure`` of its own and returns a new array:
mmengine's ``Visualizer.draw_*`` methods draw on the visualiser's one
shared canvas (``set_image`` / ``get_image``, the latter on rank 0 only),
which callers in several threads (gradio runs the web demo's callbacks in
worker threads) would share, and ``draw_texts`` does not wrap text.
"""
import os.path as osp
import textwrap
from functools import lru_cache
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple, Union

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties, get_font
from matplotlib.textpath import text_to_path
from mmengine.visualization.utils import img_from_canvas

#: Font file (bundled with matplotlib, so always present).
FONT_FILE = osp.join(matplotlib.get_data_path(), 'fonts', 'ttf',
                     'DejaVuSansMono-Bold.ttf')
#: Drawn for every character the font has no glyph for.
PLACEHOLDER = '\ufffd'
#: Ends a text cut at its last allowed line.
ELLIPSIS = ' …'
#: Most lines of a caption (paragraphs together).
MAX_LINES = 4
#: Figure resolution: at 72 dpi one point is one pixel.
_DPI = 72
_WHITE = (1., 1., 1.)
#: Header background, RGB in [0, 1] (dark grey 32).
HEADER_COLOR = (32 / 255., ) * 3


class TextStyle(NamedTuple):
    """Text metrics in pixels for pictures of a given width.

    Attributes:
        font_px (float): Font size (em) in pixels.
        char_w (float): Advance of one character in pixels.
        line_h (int): Distance between two baselines in pixels.
        pad (int): Margin around text blocks in pixels.
    """
    font_px: float
    char_w: float
    line_h: int
    pad: int


@lru_cache(maxsize=1)
def _glyphs() -> frozenset:
    """Code points the font has a glyph for."""
    return frozenset(get_font(FONT_FILE).get_charmap())


@lru_cache(maxsize=1)
def _advance_em() -> float:
    """Advance of one character of the monospaced font, in em."""
    width, _, _ = text_to_path.get_text_width_height_descent(
        '0' * 10, FontProperties(fname=FONT_FILE, size=100.), False)
    return width / 1000.


def printable(text: str) -> str:
    """``text`` with every character the font lacks replaced by ``�``.

    Whitespace is kept (wrapping turns it into spaces).

    Args:
        text (str): Any text.

    Returns:
        str: Text of the same length.
    """
    glyphs = _glyphs()
    return ''.join(ch if ch.isspace() or ord(ch) in glyphs else PLACEHOLDER
                   for ch in text)


def text_style(width: int) -> TextStyle:
    """Text metrics for a picture (or panel) ``width`` pixels wide.

    About 59 characters fit a line of any width from 360 px up (a font of
    ``width / 36`` px, at least 10 px).

    Args:
        width (int): Width in pixels.

    Returns:
        TextStyle: The metrics.
    """
    font_px = float(np.clip(width / 36., 10., 96.))
    return TextStyle(
        font_px=font_px,
        char_w=font_px * _advance_em(),
        line_h=int(np.ceil(1.5 * font_px)),
        pad=max(3, int(round(width / 100.))))


def wrap(paragraphs: Sequence[str],
         width: int,
         style: TextStyle,
         max_lines: int = MAX_LINES) -> List[str]:
    """Word-wrap paragraphs into at most ``max_lines`` lines.

    Each paragraph starts a new line; every later paragraph keeps at least
    one line, so an expression is cut (its last line ending in ``…``)
    before the lines that follow it are. A word longer than a line is
    broken.

    Args:
        paragraphs (Sequence[str]): Texts, in order.
        width (int): Line width in pixels.
        style (TextStyle): Font metrics.
        max_lines (int): Most lines in all (>= 1). Defaults to
            :data:`MAX_LINES`.

    Returns:
        list[str]: The lines (characters without a glyph as ``�``).
    """
    chars = max(len(ELLIPSIS), int(width // style.char_w))
    lines: List[str] = []
    for i, text in enumerate(paragraphs):
        room = max_lines - len(lines) - (len(paragraphs) - 1 - i)
        if room <= 0:
            break
        lines += textwrap.wrap(
            printable(text), chars, max_lines=room, placeholder=ELLIPSIS)
    return lines


def _canvas(width: int, height: int, **kwargs) -> Tuple[Figure, Callable]:
    """A figure of ``width`` x ``height`` pixels and its renderer.

    Returns:
        tuple[Figure, Callable]: The figure and a function returning its
        rendering as an RGB uint8 array of shape (height, width, 3).
    """
    # the 1e-2 keeps matplotlib's size rounding from losing a pixel, as in
    # mmengine's Visualizer.set_image
    fig = Figure(
        figsize=((width + 1e-2) / _DPI, (height + 1e-2) / _DPI),
        dpi=_DPI,
        **kwargs)
    canvas = FigureCanvasAgg(fig)
    return fig, lambda: img_from_canvas(canvas)[:height, :width]


def _put_lines(fig: Figure, lines: List[str], x: int, y: int,
               style: TextStyle) -> None:
    """Write ``lines`` in white from the top-left corner ``(x, y)`` (px,
    from the top)."""
    width, height = fig.bbox.width, fig.bbox.height
    for i, line in enumerate(lines):
        fig.text(
            x / width,
            1. - (y + i * style.line_h) / height,
            line,
            color=_WHITE,
            fontproperties=FontProperties(fname=FONT_FILE),
            size=style.font_px,
            ha='left',
            va='top')


def draw_banner(image: np.ndarray,
                text: Optional[Union[str, Sequence[str]]]) -> np.ndarray:
    """Write text in white on a dark banner over the top rows of an image.

    The banner darkens the image to 40 % and holds the wrapped text
    (:func:`wrap`) in at most :data:`MAX_LINES` lines and at most a third
    of the image height (at least one line), so the image stays visible
    under any expression.

    Args:
        image (np.ndarray): RGB uint8 image of shape (H, W, 3); not
            modified.
        text (str | Sequence[str], optional): The text, or one paragraph
            per item; None or empty texts draw no banner.

    Returns:
        np.ndarray: RGB uint8 image of shape (H, W, 3): ``image`` itself
        when there is no text, otherwise a new array.
    """
    texts = [text] if isinstance(text, str) else list(text or [])
    paragraphs = [t for t in texts if t]
    if not paragraphs:
        return image
    h, w = image.shape[:2]
    style = text_style(w)
    max_lines = max(1, min(MAX_LINES, (h // 3 - style.pad) // style.line_h))
    lines = wrap(paragraphs, w - 2 * style.pad, style, max_lines)
    banner_h = min(h, len(lines) * style.line_h + style.pad)
    fig, render = _canvas(w, banner_h)
    fig.figimage(np.round(image[:banner_h] * 0.4).astype(np.uint8))
    _put_lines(fig, lines, style.pad, style.pad, style)
    out = image.copy()
    out[:banner_h] = render()
    return out


def _colorbar(fig: Figure, box: Tuple[int, int, int, int], colors: np.ndarray,
              style: TextStyle) -> None:
    """A horizontal colour bar labelled 0 (left) and 1 (right).

    Args:
        fig (Figure): The header figure.
        box (tuple[int]): ``(x0, y0, x1, y1)`` of the bar in pixels from
            the top-left corner; the labels go below it.
        colors (np.ndarray): RGB uint8 colours of shape (x1 - x0, 3), one
            per pixel column, from value 0 to 1.
        style (TextStyle): Font metrics of the labels.
    """
    width, height = fig.bbox.width, fig.bbox.height
    x0, y0, x1, y1 = box
    cax = fig.add_axes(
        (x0 / width, 1. - y1 / height, (x1 - x0) / width, (y1 - y0) / height))
    # one colour per pixel column: the bar shows the heat map's exact
    # colours, 0 at the first column and 1 at the last
    mappable = ScalarMappable(Normalize(0., 1.), ListedColormap(colors / 255.))
    bar = fig.colorbar(
        mappable, cax=cax, orientation='horizontal', ticks=[0., 1.])
    bar.outline.set_visible(False)
    cax.tick_params(colors=_WHITE, length=style.pad, width=1., pad=1.)
    labels = cax.set_xticklabels(['0', '1'])
    for label, align in zip(labels, ('left', 'right')):
        label.set_fontproperties(FontProperties(fname=FONT_FILE))
        label.set_size(style.font_px)
        label.set_horizontalalignment(align)


def compose_panels(
    panels: Sequence[np.ndarray],
    titles: Sequence[str],
    paragraphs: Sequence[str],
    colorbars: Sequence[Tuple[int, Callable]] = ()
) -> np.ndarray:
    """Panels of equal size side by side under a dark header.

    The header holds, from the top: ``paragraphs`` wrapped to the whole
    width (at most :data:`MAX_LINES` lines), each panel's title wrapped to
    the panel width, and, under the titles of the panels in ``colorbars``,
    a colour bar from 0 (left) to 1 (right). The panels' pixels are not
    changed.

    Args:
        panels (Sequence[np.ndarray]): RGB uint8 pictures of shape
            (H, W, 3), left to right.
        titles (Sequence[str]): One title per panel.
        paragraphs (Sequence[str]): Texts over the whole width.
        colorbars (Sequence[tuple[int, Callable]]): ``(panel index,
            colour function)`` per colour bar; the function maps values of
            shape (1, n) in [0, 1] to RGB uint8 colours of shape (1, n, 3)
            (the colours of the panel's heat map).

    Returns:
        np.ndarray: RGB uint8 picture of shape (header height + H,
        len(panels) * W, 3).
    """
    body = np.concatenate(panels, axis=1)
    panel_w = panels[0].shape[1]
    style = text_style(panel_w)
    pad = style.pad
    lines = wrap(paragraphs, body.shape[1] - 2 * pad, style)
    title_lines = [wrap([t], panel_w - 2 * pad, style) for t in titles]
    num_title_lines = max(len(t) for t in title_lines)
    bar_h = max(2, int(round(0.6 * style.font_px)))
    bar_row = bar_h + pad + style.line_h if colorbars else 0
    title_y = pad + len(lines) * style.line_h
    bar_y = title_y + num_title_lines * style.line_h
    fig, render = _canvas(
        body.shape[1], bar_y + bar_row, facecolor=HEADER_COLOR)
    _put_lines(fig, lines, pad, pad, style)
    for k, t_lines in enumerate(title_lines):
        _put_lines(fig, t_lines, k * panel_w + pad, title_y, style)
    for k, colorize in colorbars:
        x0, x1 = k * panel_w + pad, (k + 1) * panel_w - pad
        if x1 - x0 >= 2:
            ramp = np.linspace(0., 1., x1 - x0)[None]
            _colorbar(fig, (x0, bar_y, x1, bar_y + bar_h),
                      colorize(ramp)[0].astype(np.float64), style)
    return np.concatenate([render(), body], axis=0)
