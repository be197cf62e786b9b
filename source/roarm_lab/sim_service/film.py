"""A rollout as pictures: a filmstrip PNG (what a chat model can look at) and an animated GIF (what a person
plays), from the PNG frames the renderer made."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

STRIP_COLUMNS = 4
GIF_FRAME_MS = 200


def _frames(pngs: list[bytes]) -> list[Image.Image]:
    return [Image.open(io.BytesIO(png)).convert("RGB") for png in pngs]


def filmstrip(pngs: list[bytes], labels: list[str]) -> bytes:
    """The frames in a grid, left to right and top to bottom, each labelled (step and the task's error)."""
    frames = _frames(pngs)
    w, h = frames[0].size
    cols = min(STRIP_COLUMNS, len(frames))
    rows = -(-len(frames) // cols)
    sheet = Image.new("RGB", (cols * w, rows * h), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (frame, label) in enumerate(zip(frames, labels)):
        x, y = (i % cols) * w, (i // cols) * h
        sheet.paste(frame, (x, y))
        draw.rectangle((x, y, x + 7 * len(label) + 8, y + 16), fill="white")
        draw.text((x + 4, y + 3), label, fill="black")
    out = io.BytesIO()
    sheet.save(out, format="PNG", optimize=True)
    return out.getvalue()


def gif(pngs: list[bytes]) -> bytes:
    """The frames as an animated GIF that loops, one frame per ``GIF_FRAME_MS``."""
    frames = [f.quantize(colors=128) for f in _frames(pngs)]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=GIF_FRAME_MS, loop=0)
    return out.getvalue()
