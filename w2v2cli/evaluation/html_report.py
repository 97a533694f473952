"""The HTML pages of ``eval --report FILE.html`` and ``lm tune --report FILE.html``.

One self-contained file each: styles, script and data inside it, charts drawn here as
plain SVG, no URL to fetch, so a page opens offline, from a CI artifact or a mail
attachment. Decisions, with reasons:

- **The data is the report's rows, verbatim**, embedded as JSON
  (``<script type="application/json" id="w2v2-data">``, read back by ``page_data``): the
  very rows ``.jsonl``/``.csv``/``.tsv`` get, so the page and the files never disagree.
  What the page adds is derived from them: each row's word alignment (``ops``: one letter
  per column, C/S/D/I, from ``scoring.align_words``), the utterances' audio links and the
  rows of each utterance side by side.
- **Charts are SVG written by the tool** (``html_charts.py``), not a charting library
  inlined: a histogram and a scatter plot are a few dozen lines, and 1,000 utterances
  cost about 100 bytes a point.
  The utterance table is built by the page's script from the data (only the data travels,
  not the same numbers twice), and sorted and filtered there.
- **Audio links are relative to the page's folder** (``os.path.relpath``), so a report
  and its audio can move together; the page says when a file cannot be loaded from where
  it is opened. Across Windows drives, where no relative path exists, the link is a
  ``file:`` URI.
- The page is written atomically (``fsutil``), like every output.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from ..fsutil import atomic_write
from .html_assets import EVAL_SCRIPT, STYLE
from .html_charts import (
    colour,
    escape,
    heat_map,
    histogram,
    histogram_svg,
    pair_scatter,
    scatter_svg,
)
from .reports import EvalReport, Row, TuneReport
from .scoring import align_words

#: The id of the ``<script type="application/json">`` element that holds a page's data.
DATA_ID = "w2v2-data"
#: How many of the most frequent substitutions, deletions and insertions a decoder lists.
TOP_ERRORS = 15


def write_eval_page(path: str | Path, report: EvalReport) -> None:
    """Write ``report`` as one HTML page at ``path``, atomically; audio links are made
    relative to ``path``'s folder."""
    path = Path(path)
    atomic_write(path, eval_page(report, page_dir=path.absolute().parent))


def write_tune_page(path: str | Path, report: TuneReport) -> None:
    """Write ``report`` (an alpha/beta search) as one HTML page at ``path``, atomically."""
    atomic_write(path, tune_page(report))


def page_data(page: str) -> dict:
    """The JSON data embedded in a page written here (tests and scripts read it back),
    its ``rows`` as the report's records again (dicts, keys in the report's order)."""
    m = re.search(
        rf'<script type="application/json" id="{DATA_ID}">(.*?)</script>', page, flags=re.S
    )
    if m is None:
        raise ValueError("not a w2v2 report page: no embedded data")
    data = json.loads(m.group(1))
    columns = data.pop("columns")
    data["rows"] = [dict(zip(columns, values, strict=True)) for values in data["rows"]]
    return data


def _table(rows: Sequence[Row]) -> dict[str, list]:
    """Rows as ``columns`` (the keys, once) and ``rows`` (lists of values in that order):
    a fifth of the size of repeating every key in every row. The report's rows all have
    the same keys."""
    columns = list(rows[0]) if rows else []
    for row in rows:
        if list(row) != columns:
            raise ValueError("the rows of a report must all have the same keys")
    return {"columns": columns, "rows": [list(row.values()) for row in rows]}


def audio_link(audio: str | Path, page_dir: Path) -> str:
    """The URL of ``audio`` relative to the page's folder (percent-encoded), or a
    ``file:`` URI where there is no relative path (another drive on Windows)."""
    target = Path(os.path.abspath(audio))
    try:
        relative = os.path.relpath(target, page_dir)
    except ValueError:
        return target.as_uri()
    return quote(Path(relative).as_posix())


# --------------------------------------------------------------------------- eval page


def _utterances(report: EvalReport, page_dir: Path) -> list[dict]:
    """The scored utterances in manifest order, each with the index of its row for every
    decoder (None where that decoder failed it)."""
    names = [d.name for d in report.decoders]
    found: dict[int, list[int | None]] = {}
    first_row: dict[int, int] = {}
    for r, (row, position) in enumerate(zip(report.rows, report.positions, strict=True)):
        first_row.setdefault(position, r)
        found.setdefault(position, [None] * len(names))[names.index(str(row["decoder"]))] = r
    utterances = []
    for position in sorted(found):
        row = report.rows[first_row[position]]
        utterances.append(
            {
                "id": row["id"],
                "link": audio_link(str(row["audio"]), page_dir),
                "duration": row.get("duration"),
                "rows": found[position],
            }
        )
    return utterances


def _ops(row: Row) -> str:
    return "".join(column.op for column in align_words(str(row["ref"]), str(row["hyp"])))


def eval_page(report: EvalReport, *, page_dir: Path) -> str:
    """The page of an eval run (see the module docstring); ``page_dir`` is the folder the
    page will be in, which audio links are relative to."""
    ops = [_ops(row) for row in report.rows]
    data = {
        "kind": "eval",
        "title": report.title,
        "decoders": [d.to_dict() for d in report.decoders],
        **_table(report.rows),
        "ops": ops,
        "utterances": _utterances(report, page_dir),
    }
    names = [d.name for d in report.decoders]
    by_decoder = {
        name: [r for r, row in enumerate(report.rows) if row["decoder"] == name] for name in names
    }
    max_count = max(
        (max(histogram([report.rows[r] for r in rows])) for rows in by_decoder.values() if rows),
        default=0,
    )
    max_duration = max((float(row.get("duration") or 0) for row in report.rows), default=0.0)
    max_wer = max((float(row["wer"]) for row in report.rows), default=0.0)
    utterance_of = {
        r: n for n, u in enumerate(data["utterances"]) for r in u["rows"] if r is not None
    }
    panels = []
    for name in names:
        rows = by_decoder[name]
        panels.append(
            f'<section class="panel"><h3>{escape(name)}</h3>'
            + (
                '<div class="charts">'
                + histogram_svg(name, [report.rows[r] for r in rows], max_count)
                + scatter_svg(name, rows, report.rows, utterance_of, max_duration, max_wer)
                + "</div>"
                + _error_tables(name, [report.rows[r] for r in rows], [ops[r] for r in rows])
                if rows
                else "<p>No utterance was scored.</p>"
            )
            + "</section>"
        )
    body = [
        f"<h1>{escape(report.title)}</h1>",
        _about(report.about),
        "<h2>Summary</h2>",
        _summary_table(report),
        "<h2>Per decoder</h2>" if len(names) > 1 else "<h2>Errors</h2>",
        f'<div class="panels">{"".join(panels)}</div>',
        _failed_list(report),
        "<h2>Utterances</h2>",
        _utterance_controls(names),
        _utterance_table(names),
        '<div id="player-bar"><audio id="player" controls preload="none"></audio>'
        '<span id="player-status">Click an utterance to play it.</span></div>',
    ]
    return _page(report.title, "\n".join(body), data, EVAL_SCRIPT)


def _summary_table(report: EvalReport) -> str:
    head = "".join(
        f"<th>{h}</th>"
        for h in ("Decoder", "Utts", "Failed", "Audio", "WER", "CER", "S", "D", "I", "Speed")
    )
    lines = []
    for d in report.decoders:
        s = d.to_dict()
        speed = s["speed"]
        cells = [
            f'<td class="name">{escape(d.name)}</td>',
            _num("utterances", s["utterances"]),
            _num("failed", s["failed"]),
            _num("audio_seconds", _duration(d.audio_seconds)),
            _num("wer", f"{100 * d.score.wer:.2f}%"),
            _num("cer", f"{100 * d.score.cer:.2f}%"),
            _num("substitutions", s["substitutions"]),
            _num("deletions", s["deletions"]),
            _num("insertions", s["insertions"]),
            _num(
                "speed",
                "–" if speed is None else f"{speed:.0f}×" if speed >= 100 else f"{speed:.1f}×",
            ),
        ]
        lines.append(f'<tr data-decoder="{escape(d.name)}">{"".join(cells)}</tr>')
    return (
        f'<table id="summary" class="summary"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(lines)}</tbody></table>"
        '<p class="note">WER and CER are corpus-level: all errors over all reference words '
        "(characters). Audio: the scored audio; speed: audio time over the time the model "
        "and this decoder took.</p>"
    )


def _num(key: str, value: object) -> str:
    return f'<td class="num" data-key="{key}">{escape(str(value))}</td>'


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _about(about: Sequence[tuple[str, str]]) -> str:
    if not about:
        return ""
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in about)
    return f'<dl class="about">{items}</dl>'


def _failed_list(report: EvalReport) -> str:
    if not report.failed:
        return ""
    items = "".join(
        f"<li><code>{escape(f.audio)}</code>"
        f"{'' if f.decoder is None else f' ({escape(f.decoder)})'}: {escape(f.reason)}</li>"
        for f in report.failed
    )
    return (
        f'<h2>Failed ({len(report.failed)})</h2><p class="note">Left out of the scores.</p>'
        f'<ul id="failed">{items}</ul>'
    )


def _utterance_controls(names: Sequence[str]) -> str:
    options = [
        ("all", "all utterances"),
        ("errors", "with errors"),
        ("correct", "without errors"),
    ]
    if len(names) > 1:
        options.append(("differ", "where the decoders differ"))
    choices = "".join(f'<option value="{v}">{t}</option>' for v, t in options)
    return (
        '<div class="controls"><input id="filter" type="search" '
        'placeholder="Filter: words of the texts or the id" aria-label="filter">'
        f'<select id="show" aria-label="show">{choices}</select>'
        '<span id="shown"></span></div>'
    )


def _utterance_table(names: Sequence[str]) -> str:
    heads = ['<th data-sort="num">#</th>', '<th data-sort="str">Id</th>']
    heads.append('<th data-sort="num" title="seconds">Dur.</th>')
    for name in names:
        label = f"<br><small>{escape(name)}</small>" if len(names) > 1 else ""
        heads.append(f'<th data-sort="num" title="word error rate, %">WER{label}</th>')
        heads.append(f'<th data-sort="num" title="S + D + I">Err.{label}</th>')
    heads.append(
        "<th>Reference above, hypothesis below: "
        '<span class="w S">substituted</span> <span class="w D">deleted</span> '
        '<span class="w I">inserted</span></th>'
    )
    return f'<table id="utterances"><thead><tr>{"".join(heads)}</tr></thead><tbody></tbody></table>'


def _error_tables(name: str, rows: Sequence[Row], ops: Sequence[str]) -> str:
    """The most frequent substitutions (ref → hyp), deletions and insertions."""
    subs: Counter[str] = Counter()
    dels: Counter[str] = Counter()
    ins: Counter[str] = Counter()
    for row, row_ops in zip(rows, ops, strict=True):
        ref = str(row["ref"]).split()
        hyp = str(row["hyp"]).split()
        i = j = 0
        for op in row_ops:
            if op in "CS":
                if op == "S":
                    subs[f"{ref[i]} → {hyp[j]}"] += 1
                i += 1
                j += 1
            elif op == "D":
                dels[ref[i]] += 1
                i += 1
            else:
                ins[hyp[j]] += 1
                j += 1
    tables = []
    for title, counts in (("Substitutions", subs), ("Deletions", dels), ("Insertions", ins)):
        lines = "".join(
            f'<tr><td>{escape(w)}</td><td class="num">{n}</td></tr>'
            for w, n in counts.most_common(TOP_ERRORS)
        )
        body = lines or '<tr><td class="none" colspan="2">none</td></tr>'
        total = sum(counts.values())
        tables.append(
            f'<table class="top {title.lower()}"><caption>{title} ({total})</caption>'
            f"<tbody>{body}</tbody></table>"
        )
    return f'<div class="tops" data-decoder="{escape(name)}">{"".join(tables)}</div>'


# --------------------------------------------------------------------------- tune page


def tune_page(report: TuneReport) -> str:
    """The page of an alpha/beta search: a heat map of WER over alpha and beta (points in
    the alpha/beta plane for a random search), the chosen pair marked, and every pair."""
    data = {"kind": "tune", "title": report.title, **_table(report.rows)}
    best = report.best
    body = [
        f"<h1>{escape(report.title)}</h1>",
        _about(report.about),
        f'<p class="best">Best: <code>--alpha {best["alpha"]:g} --beta {best["beta"]:g}</code> '
        f"(WER {100 * float(best['wer']):.2f}%, CER {100 * float(best['cer']):.2f}%), "
        f"{len(report.rows)} pairs on {report.utterances} utterances in "
        f"{report.seconds:.1f} s.</p>",
        "<h2>WER over alpha and beta</h2>",
        _tune_chart(report.rows),
        "<h2>Every pair, best first</h2>",
        _tune_table(report.rows),
    ]
    return _page(report.title, "\n".join(body), data, "")


def _tune_chart(rows: Sequence[Row]) -> str:
    alphas = sorted({float(r["alpha"]) for r in rows})
    betas = sorted({float(r["beta"]) for r in rows})
    wers = [float(r["wer"]) for r in rows]
    low, high = min(wers), max(wers)
    best = rows[0]
    if len(rows) == len(alphas) * len(betas):
        chart = heat_map(rows, alphas, betas, low, high, best)
    else:
        chart = pair_scatter(rows, low, high, best)
    legend = (
        '<p class="legend"><span class="swatch" style="background:'
        f'{colour(low, low, high)}"></span> {100 * low:.2f}% (lowest) '
        f'<span class="swatch" style="background:{colour(high, low, high)}"></span> '
        f"{100 * high:.2f}% (highest); the chosen pair is outlined.</p>"
    )
    return chart + legend


def _tune_table(rows: Sequence[Row]) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("#", "alpha", "beta", "WER", "CER", "S", "D", "I"))
    lines = []
    for n, row in enumerate(rows, start=1):
        cells = [
            f'<td class="num">{n}</td>',
            _num("alpha", f"{row['alpha']:g}"),
            _num("beta", f"{row['beta']:g}"),
            _num("wer", f"{100 * float(row['wer']):.2f}%"),
            _num("cer", f"{100 * float(row['cer']):.2f}%"),
            _num("substitutions", row["substitutions"]),
            _num("deletions", row["deletions"]),
            _num("insertions", row["insertions"]),
        ]
        cls = ' class="chosen"' if n == 1 else ""
        lines.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return (
        f'<table id="pairs" class="summary"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(lines)}</tbody></table>"
    )


# --------------------------------------------------------------------------- the page


def _json_for_script(data: object) -> str:
    """JSON that cannot end its ``<script>`` element early: every ``<`` escaped."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")


def _page(title: str, body: str, data: object, script: str) -> str:
    script_tag = f"<script>{script}</script>" if script else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # Nothing is fetched: no URL in the page, and this policy forbids any (audio from
        # files beside the page excepted).
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; "
        "media-src 'self' file: blob:\">"
        '<link rel="icon" href="data:,">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n<body>\n{body}\n"
        f'<script type="application/json" id="{DATA_ID}">{_json_for_script(data)}</script>\n'
        f"{script_tag}\n</body></html>\n"
    )
