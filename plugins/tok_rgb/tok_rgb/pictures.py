"""Pictures for people: inputs beside codecs' decodings, for reports and `tokcore eval`.

* `write_grid`: a PNG, one row per image, columns input | tokenizer | baselines.
* `write_clips`: for clips, an animated GIF playing the same grid frame by frame, and a
  filmstrip PNG (per clip, one row of frames per column) for a page that does not animate.

Pictures are 8-bit `(N, 3, H, W)` / `(N, 3, T, H, W)` arrays; small ones are enlarged
(nearest neighbour) so that a 32 px crop is not a dot on the page.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw

from tokcore.api import atomic_write_bytes

GAP, HEAD = 4, 16  # pixels between tiles; header height for the column names
LABEL = 96  # least width of the row labels of a filmstrip (wider for longer labels)
GIF_FPS = 8.0  # playback rate of the clips (the batch carries no frame rate)


def pick_rows(n: int, count: int) -> np.ndarray:
    """`count` indices spread evenly over `n` samples (all of them when there are fewer)."""
    return np.linspace(0, n - 1, min(count, n)).round().astype(int)


def auto_zoom(h: int, w: int, target: int = 128) -> int:
    """The integer enlargement that brings the longer side to about `target` pixels (at least 1)."""
    return max(1, target // max(h, w))


def tile_sheet(cells: Sequence[Sequence[np.ndarray]], header: Sequence[str], zoom: int,
               row_labels: Sequence[str] | None = None) -> Image.Image:
    """Tiles `cells[r][c]` (`(3, h, w)` uint8, all the same size) on white, the `header` names
    above the columns and, when given, `row_labels` to the left of the rows."""
    h, w = cells[0][0].shape[-2] * zoom, cells[0][0].shape[-1] * zoom
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left = max(LABEL, max(int(measure.textlength(t)) + 8 for t in row_labels)) if row_labels else 0
    columns = max(len(r) for r in cells)
    sheet = Image.new("RGB", (left + columns * (w + GAP) + GAP, HEAD + len(cells) * (h + GAP) + GAP), "white")
    draw = ImageDraw.Draw(sheet)
    for c, name in enumerate(header):
        draw.text((left + GAP + c * (w + GAP), 2), name, fill="black")
    for r, row in enumerate(cells):
        y = HEAD + GAP + r * (h + GAP)
        if row_labels:
            draw.text((2, y + h // 2 - 6), row_labels[r], fill="black")
        for c, tile in enumerate(row):
            image = Image.fromarray(np.ascontiguousarray(tile.transpose(1, 2, 0)))
            sheet.paste(image.resize((w, h), Image.Resampling.NEAREST), (left + GAP + c * (w + GAP), y))
    return sheet


def _png(sheet: Image.Image, path: Path) -> Path:
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return path


def write_grid(rows: Mapping[str, np.ndarray], inputs: np.ndarray, path: Path, count: int = 8,
               zoom: int | None = None) -> Path:
    """A PNG with one row per image (the first `count`, spread over the batch) and the columns
    input | each of `rows` (name -> `(N, 3, H, W)` uint8 aligned with `inputs`), enlarged
    `zoom` times (default: to about 128 px), with the column names on top."""
    columns = {"input": inputs, **rows}
    zoom = zoom or auto_zoom(*inputs.shape[-2:])
    cells = [[images[i] for images in columns.values()] for i in pick_rows(len(inputs), count)]
    return _png(tile_sheet(cells, list(columns), zoom), path)


def write_clips(columns: Mapping[str, np.ndarray], path: Path, count: int = 4) -> list[Path]:
    """`<path>.gif` (each frame: one row per clip, one column per entry of `columns`, name ->
    `(N, 3, T, H, W)` uint8, playing at 8 fps and looping) and `<path>.png` (the filmstrip:
    per clip, one row of frames per column, labelled)."""
    first = next(iter(columns.values()))
    zoom = auto_zoom(*first.shape[-2:], target=96)
    pick, frames = pick_rows(len(first), count), first.shape[2]
    sheets = [tile_sheet([[clips[i][:, t] for clips in columns.values()] for i in pick], list(columns), zoom)
              for t in range(frames)]
    gif = path.with_name(path.name + ".gif")
    buf = io.BytesIO()
    sheets[0].save(buf, format="GIF", save_all=True, append_images=sheets[1:], duration=round(1000 / GIF_FPS), loop=0)
    atomic_write_bytes(gif, buf.getvalue())
    strip = [[clips[i][:, t] for t in range(frames)] for i in pick for clips in columns.values()]
    labels = [f"{k} #{i}" for i in pick for k in columns]
    png = _png(tile_sheet(strip, [f"t={t}" for t in range(frames)], zoom, row_labels=labels),
               path.with_name(path.name + ".png"))
    return [gif, png]
