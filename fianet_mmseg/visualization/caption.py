"""The expression written on a band, its decoupled phrases coloured and underlined.

The object phrase is drawn in orange and underlined, the spatial phrases in
cyan and underlined (a word in both: orange text, cyan underline), other words
in white. The caption uses OpenCV's Hershey font, so characters outside ASCII
are drawn as ``?``.
"""
from __future__ import annotations

import re
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .masks import Color, check_image
from .phrases import OBJECT, PLAIN, SPATIAL, char_roles, locate_phrases, role_runs

OBJECT_COLOR: Color = (255, 160, 0)
SPATIAL_COLOR: Color = (0, 200, 255)
TEXT_COLOR: Color = (255, 255, 255)
BAND_COLOR: Color = (0, 0, 0)

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_LEGEND = ((('object', OBJECT), ('  ', PLAIN), ('spatial', SPATIAL)),)


def font_scale_for(width: int) -> float:
    """Hershey font scale for a canvas ``width`` pixels wide (0.3 to 0.8)."""
    return float(np.clip(width / 900.0, 0.3, 0.8))


def _wrap(expression: str, roles: np.ndarray, width: int, scale: float,
          margin: int) -> List[List[Tuple[str, int]]]:
    """Greedy word wrap; each line is a list of ``(text, role)`` runs."""
    lines: List[List[Tuple[str, int]]] = []
    line: List[Tuple[str, int]] = []
    line_width = 0
    space_width = cv2.getTextSize(' ', _FONT, scale, 1)[0][0]
    usable = max(1, width - 2 * margin)
    for match in re.finditer(r'\S+', expression):
        word = match.group()
        word_width = cv2.getTextSize(word, _FONT, scale, 1)[0][0]
        if line and line_width + space_width + word_width > usable:
            lines.append(line)
            line, line_width = [], 0
        if line:
            # the gap takes the role of the white space before the word, so a phrase's
            # underline runs across it
            gap_role = int(roles[match.start() - 1]) if match.start() > 0 else PLAIN
            line.append((' ', gap_role))
            line_width += space_width
        line.extend(role_runs(word, roles[match.start():match.end()]))
        line_width += word_width
    if line:
        lines.append(line)
    return lines


def _line_metrics(scale: float) -> Tuple[int, int, int]:
    """(text height, baseline, line height) of the caption font."""
    (_, text_height), baseline = cv2.getTextSize('Ag', _FONT, scale, 1)
    return text_height, baseline, text_height + baseline + max(2, text_height // 3)


def _draw_lines(canvas: np.ndarray, lines: Sequence[Sequence[Tuple[str, int]]], top: int,
                scale: float, margin: int) -> None:
    """Draw caption lines (in place) from ``top``, colouring and underlining phrases."""
    text_height, baseline, line_height = _line_metrics(scale)
    for index, line in enumerate(lines):
        y = top + index * line_height + text_height
        x = margin
        for text, role in line:
            run_width = cv2.getTextSize(text, _FONT, scale, 1)[0][0]
            color = OBJECT_COLOR if role & OBJECT else SPATIAL_COLOR if role & SPATIAL \
                else TEXT_COLOR
            if text.strip():
                cv2.putText(canvas, text, (x, y), _FONT, scale, color, 1, cv2.LINE_AA)
            if role:
                underline = SPATIAL_COLOR if role & SPATIAL else OBJECT_COLOR
                y_line = min(canvas.shape[0] - 1, y + max(1, baseline // 2))
                cv2.line(canvas, (x, y_line), (x + run_width - 1, y_line), underline, 1,
                         cv2.LINE_8)
            x += run_width


def draw_caption(image: np.ndarray, expression: str, object_phrase: Optional[str] = None,
                 spatial_phrases: Sequence[str] = (), inside: bool = True,
                 legend: Optional[bool] = None, band_alpha: float = 0.6,
                 max_band_fraction: float = 0.5) -> np.ndarray:
    """Write ``expression`` on a band, marking the object and spatial phrases.

    Args:
        image: ``(H, W, 3)`` uint8 RGB image (not modified).
        expression: The referring expression (wrapped at word boundaries).
        object_phrase, spatial_phrases: Decoupled phrases (substrings of the
            expression), located with :func:`locate_phrases`.
        inside: True: a semi-transparent band over the bottom of the image
            (the result keeps the image's size; lines beyond
            ``max_band_fraction`` of the height are cut, ending in ``...``).
            False: an opaque band appended below the image (nothing cut).
        legend: Add a line naming the two colours; default: only when not
            ``inside``.
        band_alpha: Opacity of the band when ``inside``.
        max_band_fraction: Largest share of the height the inside band covers.

    Returns:
        np.ndarray: ``(H, W, 3)`` when ``inside``, else ``(H + band, W, 3)``.
    """
    check_image(image)
    height, width = image.shape[:2]
    scale = font_scale_for(width)
    margin = max(2, width // 100)
    object_span, spatial_spans = locate_phrases(expression, object_phrase, spatial_phrases)
    roles = char_roles(expression, object_span, spatial_spans)
    lines = _wrap(expression, roles, width, scale, margin)
    if legend is None:
        legend = not inside
    if legend:
        lines += [list(line) for line in _LEGEND]
    _, _, line_height = _line_metrics(scale)
    pad = max(2, line_height // 4)
    if inside:
        max_lines = max(1, (int(height * max_band_fraction) - 2 * pad) // line_height)
        if len(lines) > max_lines:
            lines = lines[:max_lines]
            lines[-1] = list(lines[-1]) + [(' ...', PLAIN)]
    band_height = len(lines) * line_height + 2 * pad
    if inside:
        band_height = min(band_height, height)
        canvas = image.copy()
        top = height - band_height
        band = canvas[top:].astype(np.float32) * (1.0 - band_alpha) + \
            np.float32(BAND_COLOR) * band_alpha
        canvas[top:] = np.clip(np.rint(band), 0, 255).astype(np.uint8)
    else:
        band = np.empty((band_height, width, 3), dtype=np.uint8)
        band[:] = BAND_COLOR
        canvas = np.concatenate([image, band], axis=0)
        top = height
    _draw_lines(canvas, lines, top + pad, scale, margin)
    return canvas


def draw_title(image: np.ndarray, title: str, color: Color = TEXT_COLOR) -> np.ndarray:
    """A small label with a dark box in the top-left corner (new image)."""
    check_image(image)
    out = image.copy()
    scale = font_scale_for(image.shape[1])
    (text_width, text_height), baseline = cv2.getTextSize(title, _FONT, scale, 1)
    cv2.rectangle(out, (0, 0), (text_width + 4, text_height + baseline + 4), BAND_COLOR, -1)
    cv2.putText(out, title, (2, text_height + 2), _FONT, scale, color, 1, cv2.LINE_AA)
    return out
