"""The charts of the report pages (``html_report.py``), written as plain SVG: the WER
histogram and WER against duration of ``eval``'s page, the heat map (or scatter) of WER
over alpha and beta of ``lm tune``'s; and the two primitives every part of a page uses
(``escape``, ``svg``)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from .reports import Row

#: Bins of the WER histogram: exactly 0, then (0, 10%], ..., (90%, 100%], then above.
HISTOGRAM_EDGES = tuple(i / 10 for i in range(11))


def escape(text: str) -> str:
    return html.escape(text, quote=True)


def svg(ident: str, width: float, height: float, title: str, parts: Sequence[str]) -> str:
    return (
        f'<svg id="{escape(ident)}" class="chart" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>{''.join(parts)}</svg>"
    )


def nice_step(span: float, ticks: int = 5) -> float:
    raw = span / ticks if span > 0 else 1.0
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * power:
            return m * power
    return 10 * power


def histogram(rows: Sequence[Row]) -> list[int]:
    """Counts per bin: WER exactly 0, (0, 10%], ..., (90%, 100%], above 100%."""
    counts = [0] * (len(HISTOGRAM_EDGES) + 1)
    for row in rows:
        wer = float(row["wer"])
        if wer <= 0:
            counts[0] += 1
        elif wer > 1:
            counts[-1] += 1
        else:
            counts[min(10, math.ceil(round(wer * 10, 9)))] += 1
    return counts


def histogram_svg(name: str, rows: Sequence[Row], max_count: int) -> str:
    counts = histogram(rows)
    width, height, left, bottom, top = 420, 190, 34, 34, 12
    plot_w, plot_h = width - left - 8, height - bottom - top
    gap = 0.8  # bar widths between the last decile and the bar above 100%
    bar_w = plot_w / (len(counts) + gap)
    ceiling = max(max_count, 1)
    parts = []
    for i, count in enumerate(counts):
        h = plot_h * count / ceiling
        x = left + (i + (gap if i == len(counts) - 1 else 0)) * bar_w
        if i == 0:
            what = "WER 0"
        elif i == len(counts) - 1:
            what = "WER above 100%"
        else:
            what = f"WER in ({10 * (i - 1)}%, {10 * i}%]"
        cls = "bar ok" if i == 0 else "bar"
        parts.append(
            f'<rect class="{cls}" x="{x + 1:.1f}" y="{top + plot_h - h:.1f}" '
            f'width="{bar_w - 2:.1f}" height="{h:.1f}"><title>{count} utterances: {what}'
            "</title></rect>"
        )
        if count:
            parts.append(
                f'<text class="count" x="{x + bar_w / 2:.1f}" y="{top + plot_h - h - 2:.1f}">'
                f"{count}</text>"
            )
        # The exact-zero and the above-100% bars are labelled under their middle; between
        # them, every other decile's upper edge under the boundary it ends at.
        if i == 0 or i == len(counts) - 1:
            label, at = ("0" if i == 0 else ">100"), x + bar_w / 2
        elif i % 2 == 0:
            label, at = f"{10 * i}", x + bar_w
        else:
            continue
        parts.append(f'<text class="tick" x="{at:.1f}" y="{top + plot_h + 13}">{label}</text>')
    parts.append(
        f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" '
        f'y2="{top + plot_h}"/>'
        f'<text class="label" x="{left + plot_w / 2:.0f}" y="{height - 4}">'
        "utterance WER, %</text>"
        f'<text class="label" transform="rotate(-90)" x="{-(top + plot_h / 2):.0f}" y="12">'
        "utterances</text>"
    )
    return svg(f"hist-{name}", width, height, f"Histogram of utterance WER, {name}", parts)


def scatter_svg(
    name: str,
    rows: Sequence[int],
    all_rows: Sequence[Row],
    utterance_of: dict[int, int],
    max_duration: float,
    max_wer: float,
) -> str:
    width, height, left, bottom, top, right = 420, 210, 40, 34, 10, 10
    plot_w, plot_h = width - left - right, height - bottom - top
    x_step = nice_step(max(max_duration, 1.0))
    x_max = x_step * math.ceil(max(max_duration, 1.0) / x_step)
    y_max = 1.0 if max_wer <= 1.0 else min(2.0, math.ceil(max_wer * 4) / 4)
    y_step = nice_step(100 * y_max) / 100

    def px(seconds: float) -> float:
        return left + plot_w * seconds / x_max

    def py(wer: float) -> float:
        return top + plot_h * (1 - min(wer, y_max) / y_max)

    parts = []
    v = 0.0
    while v <= y_max + 1e-9:
        y = py(v)
        parts.append(
            f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}"/>'
            f'<text class="tick end" x="{left - 4}" y="{y + 3:.1f}">{100 * v:g}</text>'
        )
        v += y_step
    v = 0.0
    while v <= x_max + 1e-9:
        x = px(v)
        parts.append(f'<text class="tick" x="{x:.1f}" y="{top + plot_h + 13}">{v:g}</text>')
        v += x_step
    for r in rows:
        row = all_rows[r]
        wer = float(row["wer"])
        duration = float(row.get("duration") or 0)
        clipped = " clipped" if wer > y_max else ""
        cls = "pt ok" if wer == 0 else f"pt{clipped}"
        parts.append(
            f'<circle class="{cls}" cx="{px(duration):.1f}" cy="{py(wer):.1f}" r="3" '
            f'data-u="{utterance_of[r]}"><title>{escape(str(row["id"]))}: WER '
            f"{100 * wer:.1f}%, {duration:.1f} s</title></circle>"
        )
    parts.append(
        f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" '
        f'y2="{top + plot_h}"/>'
        f'<text class="label" x="{left + plot_w / 2:.0f}" y="{height - 4}">duration, s</text>'
        f'<text class="label" transform="rotate(-90)" x="{-(top + plot_h / 2):.0f}" y="11">'
        "WER, %</text>"
    )
    return svg(f"scatter-{name}", width, height, f"Utterance WER against duration, {name}", parts)


def colour(wer: float, low: float, high: float) -> str:
    """Green for the lowest WER through yellow to red for the highest."""
    t = 0.0 if high <= low else (wer - low) / (high - low)
    return f"hsl({120 * (1 - t):.0f},70%,{62 + 10 * t:.0f}%)"


def pair_title(row: Row) -> str:
    return (
        f"alpha {row['alpha']:g}, beta {row['beta']:g}: WER {100 * float(row['wer']):.2f}%, "
        f"CER {100 * float(row['cer']):.2f}%, S/D/I {row['substitutions']}/{row['deletions']}/"
        f"{row['insertions']}"
    )


def heat_map(
    rows: Sequence[Row],
    alphas: list[float],
    betas: list[float],
    low: float,
    high: float,
    best: Row,
) -> str:
    cell_w = max(46, min(90, 640 // len(betas)))
    cell_h = max(22, min(44, 440 // len(alphas)))
    left, top = 62, 26
    width = left + cell_w * len(betas) + 10
    height = top + cell_h * len(alphas) + 40
    at = {(float(r["alpha"]), float(r["beta"])): r for r in rows}
    parts = [
        f'<text class="label" x="{left + cell_w * len(betas) / 2:.0f}" y="12">beta</text>',
        f'<text class="label" transform="rotate(-90)" x="{-(top + cell_h * len(alphas) / 2):.0f}"'
        ' y="12">alpha</text>',
    ]
    for j, beta in enumerate(betas):
        parts.append(
            f'<text class="tick" x="{left + (j + 0.5) * cell_w:.0f}" y="{top - 4}">'
            f"{beta:.4g}</text>"
        )
    marked = ""
    for i, alpha in enumerate(alphas):
        y = top + i * cell_h
        parts.append(
            f'<text class="tick end" x="{left - 4}" y="{y + cell_h / 2 + 4:.0f}">{alpha:.4g}</text>'
        )
        for j, beta in enumerate(betas):
            row = at[(alpha, beta)]
            x = left + j * cell_w
            wer = float(row["wer"])
            chosen = row is best
            parts.append(
                f'<g class="cell{" best" if chosen else ""}" data-alpha="{alpha:g}" '
                f'data-beta="{beta:g}"><rect x="{x}" y="{y}" width="{cell_w}" height="{cell_h}" '
                f'fill="{colour(wer, low, high)}"/><text x="{x + cell_w / 2:.0f}" '
                f'y="{y + cell_h / 2 + 4:.0f}">{100 * wer:.2f}</text>'
                f"<title>{escape(pair_title(row))}</title></g>"
            )
            if chosen:
                marked = (
                    f'<rect class="chosen" x="{x + 1.5}" y="{y + 1.5}" width="{cell_w - 3}" '
                    f'height="{cell_h - 3}"/>'
                )
    parts.append(marked)
    parts.append(
        f'<text class="note" x="{left}" y="{height - 8}">WER, %, of each pair; '
        "rows: alpha (LM weight), columns: beta (word bonus)</text>"
    )
    return svg("heatmap", width, height, "WER over alpha and beta", parts)


def pair_scatter(rows: Sequence[Row], low: float, high: float, best: Row) -> str:
    alphas = [float(r["alpha"]) for r in rows]
    betas = [float(r["beta"]) for r in rows]
    width, height, left, bottom, top, right = 560, 360, 50, 40, 14, 16
    plot_w, plot_h = width - left - right, height - bottom - top
    a0, a1 = min(alphas), max(alphas)
    b0, b1 = min(betas), max(betas)
    a_span, b_span = (a1 - a0) or 1.0, (b1 - b0) or 1.0

    def px(beta: float) -> float:
        return left + plot_w * (0.04 + 0.92 * (beta - b0) / b_span)

    def py(alpha: float) -> float:
        return top + plot_h * (1 - (0.04 + 0.92 * (alpha - a0) / a_span))

    parts = [
        f'<rect class="frame" x="{left}" y="{top}" width="{plot_w}" height="{plot_h}"/>',
        f'<text class="label" x="{left + plot_w / 2:.0f}" y="{height - 4}">beta</text>',
        f'<text class="label" transform="rotate(-90)" x="{-(top + plot_h / 2):.0f}" y="12">'
        "alpha</text>",
    ]
    for value in (b0, b1):
        parts.append(
            f'<text class="tick" x="{px(value):.0f}" y="{top + plot_h + 14}">{value:.4g}</text>'
        )
    for value in (a0, a1):
        parts.append(
            f'<text class="tick end" x="{left - 4}" y="{py(value) + 4:.0f}">{value:.4g}</text>'
        )
    for row in sorted(rows, key=lambda r: -float(r["wer"])):  # the best drawn last, on top
        chosen = row is best
        parts.append(
            f'<g class="cell{" best" if chosen else ""}" data-alpha="{row["alpha"]:g}" '
            f'data-beta="{row["beta"]:g}"><circle cx="{px(float(row["beta"])):.1f}" '
            f'cy="{py(float(row["alpha"])):.1f}" r="{9 if chosen else 7}" '
            f'fill="{colour(float(row["wer"]), low, high)}"/>'
            f"<title>{escape(pair_title(row))}</title></g>"
        )
    parts.append(
        f'<circle class="chosen" cx="{px(float(best["beta"])):.1f}" '
        f'cy="{py(float(best["alpha"])):.1f}" r="13"/>'
    )
    return svg("heatmap", width, height, "WER of each (alpha, beta) pair", parts)
