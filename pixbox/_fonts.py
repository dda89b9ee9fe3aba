"""Text on Pillow images, shared by :mod:`pixbox.viz`, :mod:`pixbox.plots` and :mod:`pixbox.data.preview`.

Pillow's bundled default font only: no font files, no system look-ups, the same glyphs on
every machine.
"""

from __future__ import annotations

from PIL import ImageDraw, ImageFont

__all__ = ["font", "text_box", "text_color"]


def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's default font at ``size`` pixels (Pillow >= 10.1), else its fixed-size bitmap font."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: only the fixed-size bitmap font
        return ImageFont.load_default()


def text_box(draw: ImageDraw.ImageDraw, text: str, font) -> tuple[int, int, int, int]:
    """``(width, height, left, top)`` of the ink of ``text`` drawn at the origin."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top, left, top


def text_color(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on ``rgb`` (ITU-R BT.601 luma)."""
    luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return (0, 0, 0) if luma > 140 else (255, 255, 255)
