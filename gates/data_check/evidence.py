"""Evidence files of data_check: the per-column table (JSON) and the drift picture (PNG).

The picture is drawn with Pillow (a dependency of matplotlib, so always installed alongside it)
straight from the histograms the drift pass already computed: importing and laying out
matplotlib cost more than the whole drift computation of a 10M-row dataset.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

from clearance.core.digests import canonical_json
from gates.base import EvidenceFile

TABLE_NAME = "data_check_columns.json"
PLOT_NAME = "data_check_drift.png"

PANEL_W, PANEL_H = 360, 250
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 46, 12, 36, 30
REFERENCE_RGBA = (31, 119, 180, 140)
CURRENT_RGBA = (255, 127, 14, 140)
INK = (40, 40, 40, 255)
GRID = (225, 225, 225, 255)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _file(path: Path, media_type: str) -> EvidenceFile:
    return EvidenceFile(name=path.name, sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                        media_type=media_type, uri=path.resolve().as_uri())


def write_table(directory: Path, rows: list[dict[str, Any]], offenders: dict[str, list[Any]],
                summary: dict[str, Any]) -> EvidenceFile:
    """``data_check_columns.json``: {"columns": [row…], "offending_keys": {check id: [key…]}, "summary": …}."""
    path = directory / TABLE_NAME
    path.write_bytes(canonical_json(_clean({"columns": rows, "offending_keys": offenders, "summary": summary})))
    return _file(path, "application/json")


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _panel(draw: Any, font: Any, x0: int, y0: int, role: str, name: str, data: dict[str, Any]) -> None:
    """One panel: reference and current shares as overlaid bars, axes, title and legend."""
    left, top = x0 + MARGIN_L, y0 + MARGIN_T
    right, bottom = x0 + PANEL_W - MARGIN_R, y0 + PANEL_H - MARGIN_B
    ref, cur = list(data["reference"]), list(data["current"])
    peak = max([v for v in ref + cur if math.isfinite(v)] + [1e-12])
    for frac in (0.25, 0.5, 0.75, 1.0):
        y = bottom - (bottom - top) * frac
        draw.line([(left, y), (right, y)], fill=GRID)
        draw.text((left - 4, y), _fmt(peak * frac), fill=INK, font=font, anchor="rm")
    count = len(ref)
    width = (right - left) / max(1, count)
    numeric = data["kind"] == "numeric"
    # numeric: both histograms overlaid (translucent); categories: side by side
    bar = width if numeric else width * 0.4
    for series, colour, shift in ((ref, REFERENCE_RGBA, 0.0 if numeric else width * 0.1),
                                  (cur, CURRENT_RGBA, 0.0 if numeric else width * 0.5)):
        for i, share in enumerate(series):
            if not math.isfinite(share) or share <= 0:
                continue
            h = (bottom - top) * share / peak
            bx = left + i * width + shift
            draw.rectangle([bx, bottom - h, bx + bar - (1 if bar > 3 else 0), bottom], fill=colour)
    draw.rectangle([left, top, right, bottom], outline=INK)
    if data["kind"] == "numeric":
        edges = data["edges"]
        for i in (0, len(edges) // 2, len(edges) - 1):
            x = left + (right - left) * i / max(1, len(edges) - 1)
            draw.line([(x, bottom), (x, bottom + 3)], fill=INK)
            draw.text((x, bottom + 5), _fmt(edges[i]), fill=INK, font=font, anchor="ma")
    else:
        labels = data["labels"]
        step = max(1, math.ceil(len(labels) * 40 / (right - left)))
        for i in range(0, len(labels), step):
            x = left + (i + 0.5) * width
            text = labels[i] if len(labels[i]) <= 10 else labels[i][:9] + "…"
            draw.text((x, bottom + 5), text, fill=INK, font=font, anchor="ma")
    draw.text((x0 + PANEL_W / 2, y0 + 4), f"{role}.{name}  PSI={data['psi']:.3f}", fill=INK, font=font, anchor="mt")
    lx, ly = left, y0 + 19
    for label, colour in (("reference", REFERENCE_RGBA), (role, CURRENT_RGBA)):
        draw.rectangle([lx, ly + 2, lx + 10, ly + 10], fill=colour)
        draw.text((lx + 14, ly), label, fill=INK, font=font)
        lx += 24 + int(draw.textlength(label, font=font))


def write_plot(directory: Path, plots: dict[tuple[str, str], dict[str, Any]], count: int) -> EvidenceFile | None:
    """Reference vs current shares for the ``count`` columns with the highest PSI."""
    ranked = sorted(((k, v) for k, v in plots.items() if v.get("psi") is not None and math.isfinite(v["psi"])),
                    key=lambda kv: (-kv[1]["psi"], kv[0]))[:count]
    if not ranked:
        return None
    from PIL import Image, ImageDraw, ImageFont

    cols = min(3, len(ranked))
    rows = math.ceil(len(ranked) / cols)
    image = Image.new("RGB", (PANEL_W * cols, PANEL_H * rows), (255, 255, 255))
    draw = ImageDraw.Draw(image, "RGBA")  # RGBA fills blend onto the RGB image
    try:
        font = ImageFont.load_default(size=11)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        font = ImageFont.load_default()
    for i, ((role, name), data) in enumerate(ranked):
        _panel(draw, font, (i % cols) * PANEL_W, (i // cols) * PANEL_H, role, name, data)
    path = directory / PLOT_NAME
    image.save(path, format="PNG", optimize=False, compress_level=6)
    return _file(path, "image/png")
