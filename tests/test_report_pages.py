"""The HTML reports, ``w2v2 eval --report FILE.html`` and ``w2v2 lm tune --report
FILE.html``: what they hold (the very rows of the ``.jsonl`` written in the same run), their
links, size and failures; then, in headless Chromium (``browser.py``, with the network
emulated offline and, where ``unshare -n`` works, no network at all), what a reader does
with them: the table has one row per utterance and the same numbers, sorting and filtering
work, a click plays the audio and lights up the words as they are spoken, an unreachable
file is said so, nothing is fetched, no console error, and a screenshot that is not blank.

The run (``report_pages.eval_run``): espeak-ng speech recognised by the small trained
model, ``--decoder greedy --decoder beam --lm lm.bin``, one missing audio file and one
whose name needs percent-encoding.
"""

from __future__ import annotations

import csv
import json
import random
import re
import shutil
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
import soundfile as sf
from browser import SKIP_REASON, Browser, file_url, find_chromium, png_colours, png_pixels
from lm_fixtures import english_sentences, require_kenlm_tools
from report_pages import ODD_NAME, EvalRun, TuneRun, eval_run, tune_run

from w2v2cli.evaluation import (
    DecoderResult,
    EvalResult,
    ManifestEntry,
    UtteranceAudio,
    aggregate,
    eval_report,
    utterance_scores,
    write_report,
)
from w2v2cli.evaluation.evaluate import scored_word_times
from w2v2cli.evaluation.html_report import audio_link, eval_page, page_data, write_eval_page
from w2v2cli.records import Transcript, Word

OLD_COLUMNS = [  # what .csv/.tsv reports had before the page: they stay first, in order
    "decoder",
    "id",
    "wer",
    "cer",
    "ref_words",
    "hits",
    "substitutions",
    "deletions",
    "insertions",
    "ref_chars",
    "char_hits",
    "char_substitutions",
    "char_deletions",
    "char_insertions",
    "ref",
    "hyp",
    "reference",
    "hypothesis",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, speech) -> EvalRun:
    require_kenlm_tools()
    return eval_run(tmp_path_factory.mktemp("report"), speech)


@pytest.fixture(scope="module")
def tuned(run: EvalRun) -> TuneRun:
    return tune_run(run)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def corpus_wer(rows: list[dict], decoder: str) -> float:
    mine = [r for r in rows if r["decoder"] == decoder]
    errors = sum(r["substitutions"] + r["deletions"] + r["insertions"] for r in mine)
    return errors / sum(r["ref_words"] for r in mine)


# --------------------------------------------------------------------------- the files


def test_the_page_holds_the_rows_of_the_jsonl_written_in_the_same_run(run: EvalRun) -> None:
    assert run.result.exit_code == 1, run.result.output  # the missing file
    assert "missing.wav: no such file" in run.result.stderr
    rows = jsonl(run.jsonl)
    data = page_data(run.page.read_text(encoding="utf-8"))
    assert data["rows"] == rows
    assert [r["decoder"] for r in rows] == ["greedy"] * 13 + ["beam"] * 13
    assert len(data["utterances"]) == 13 and len(data["ops"]) == len(rows)
    # Each decoder's summary is what its rows add up to; beam with the LM does better.
    for summary in data["decoders"]:
        name = summary["decoder"]
        assert summary["wer"] == pytest.approx(corpus_wer(rows, name), abs=1e-12)
        assert summary["utterances"] == 13 and summary["failed"] == 1
    greedy, beam = (corpus_wer(rows, n) for n in ("greedy", "beam"))
    assert beam < greedy / 2
    # The summary printed is the summary on the page.
    for name, wer in (("greedy", greedy), ("beam", beam)):
        assert re.search(rf"{name}\s.*\s{100 * wer:.2f}%", run.result.stdout)
    # Alignments on the page agree with the counts of the .jsonl.
    for row, ops in zip(rows, data["ops"], strict=True):
        assert ops.count("S") == row["substitutions"] and ops.count("D") == row["deletions"]
        assert ops.count("I") == row["insertions"] and ops.count("C") == row["hits"]


def test_rows_gain_audio_duration_and_word_times_at_the_end(run: EvalRun) -> None:
    with run.csv.open(encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == [*OLD_COLUMNS, "audio", "duration", "hyp_times"]
        table = list(reader)
    rows = jsonl(run.jsonl)
    assert [json.loads(r["hyp_times"]) for r in table] == [r["hyp_times"] for r in rows]
    for row in rows:
        audio = run.root / row["audio"]  # as the manifest resolves it, from where eval ran
        assert audio.is_file() and row["audio"].startswith("set/audio/")
        assert row["duration"] == pytest.approx(sf.info(audio).duration, abs=0.03)
        times = row["hyp_times"]
        assert len(times) == len(row["hyp"].split())  # one per word as scored
        starts = [t[0] for t in times]
        assert starts == sorted(starts)
        assert all(0 <= a < b <= row["duration"] + 0.05 for a, b in times)


def test_the_page_fetches_nothing_and_links_audio_relative_to_itself(run: EvalRun) -> None:
    page = run.page.read_text(encoding="utf-8")
    assert not re.search(r"https?:|//[a-z]", page.replace("http-equiv", ""))
    assert re.findall(r'\b(?:src|href)="([^"]*)"', page) == ["data:,"]  # the empty icon
    assert "<script src" not in page and "@import" not in page and "url(" not in page
    data = page_data(page)
    links = {u["id"]: u["link"] for u in data["utterances"]}
    assert links["audio/s00.wav"] == "../set/audio/s00.wav"
    assert links[f"audio/{ODD_NAME}"] == "../set/audio/odd%20name%20%231%25.wav"
    for link in links.values():
        assert (run.page.parent / unquote(link)).is_file()


def test_audio_link_is_relative_from_the_pages_folder(tmp_path: Path) -> None:
    assert audio_link(tmp_path / "a" / "b.wav", tmp_path / "a") == "b.wav"
    assert audio_link(tmp_path / "a" / "b c.wav", tmp_path / "r" / "s") == "../../a/b%20c.wav"
    assert audio_link("rel/x?.wav", Path.cwd()) == "rel/x%3F.wav"


def test_word_times_of_the_hypothesis_as_scored() -> None:
    t = Transcript(
        "WELL-KNOWN - FOX",
        (Word("WELL-KNOWN", 0.1, 0.5, 0.9), Word("-", 0.5, 0.6, 0.9), Word("FOX", 0.7, 0.9, 1)),
        1.0,
    )
    (u,) = utterance_scores(["well known fox"], [t.text])
    assert u.hyp == "well known fox"
    assert scored_word_times(t, u.hyp) == ((0.1, 0.5), (0.1, 0.5), (0.7, 0.9))
    (raw,) = utterance_scores(["x"], [t.text], normalize=False)
    assert scored_word_times(t, raw.hyp, False) == ((0.1, 0.5), (0.5, 0.6), (0.7, 0.9))

    def glue(text: str) -> str:  # a normalisation that joins words: times cannot follow
        return text.replace(" ", "")

    (glued,) = utterance_scores(["x"], [t.text], normalize=glue)
    assert scored_word_times(t, glued.hyp, glue) is None


def _result(decoders: dict[str, list[tuple[int, str, str, str]]]) -> EvalResult:
    """An EvalResult from (manifest position, id, reference, hypothesis) per decoder,
    scored for real."""
    results = []
    for name, items in decoders.items():
        utts = utterance_scores(
            [r for _, _, r, _ in items],
            [h for _, _, _, h in items],
            ids=[i for _, i, _, _ in items],
        )
        audio = [
            UtteranceAudio(ManifestEntry(0, Path(i), r), n, 1.0 + len(r) / 20, None)
            for n, i, r, _ in items
        ]
        results.append(DecoderResult(name, utts, aggregate(utts), 0.5, [], audio))
    return EvalResult(results, [], 10.0, 1.0)


def test_utterances_line_up_across_decoders_that_failed_different_ones(tmp_path) -> None:
    """Rows of each decoder in manifest order, some missing (a decoder failed them), one
    id twice (a manifest may list a file twice): the page's utterances keep the manifest's
    order, and each points at its own row for every decoder."""
    u = [
        (0, "a", "one", "one"),
        (1, "b", "two", "too"),
        (2, "a", "three", "three"),
        (3, "c", "four", ""),
    ]
    report = eval_report(_result({"x": [u[0], u[2], u[3]], "y": [u[1], u[2]], "z": u}), title="t")
    data = page_data(eval_page(report, page_dir=tmp_path))
    got = [
        (v["id"], [None if r is None else data["rows"][r]["ref"] for r in v["rows"]])
        for v in data["utterances"]
    ]
    assert got == [
        ("a", ["one", None, "one"]),
        ("b", [None, "two", "two"]),
        ("a", ["three", "three", "three"]),
        ("c", ["four", None, "four"]),
    ]


def synthetic_report(n: int, seed: int = 1):
    """``n`` utterances of 5-40 words, two decoders with realistic errors, word times:
    scored for real."""
    rng = random.Random(seed)
    vocabulary = " ".join(english_sentences(400)).lower().split()
    refs = [" ".join(rng.choices(vocabulary, k=rng.randint(5, 40))) for _ in range(n)]
    entries = [
        ManifestEntry(i + 1, Path(f"audio/spk{i % 7}/utt{i:05d}.flac"), r)
        for i, r in enumerate(refs)
    ]

    def hear(ref: str, p: float) -> str:
        out = []
        for w in ref.split():
            x = rng.random()
            if x < p / 3:
                out.append(w[:-1] + "x")
            elif x < 2 * p / 3:
                continue
            elif x < p:
                out += [w, rng.choice(vocabulary)]
            else:
                out.append(w)
        return " ".join(out)

    decoders = []
    for name, p in (("greedy", 0.25), ("beam", 0.1)):
        utts = utterance_scores(
            refs, [hear(r, p) for r in refs], ids=[e.audio.as_posix() for e in entries]
        )
        audio = []
        for e, u in zip(entries, utts, strict=True):
            seconds, words = 0.3 * len(u.ref.split()) + 0.5, len(u.hyp.split())
            step = seconds / max(words, 1)
            times = tuple((round(i * step, 3), round((i + 0.8) * step, 3)) for i in range(words))
            audio.append(UtteranceAudio(e, e.line - 1, seconds, times))
        decoders.append(DecoderResult(name, utts, aggregate(utts), 1.0, [], audio))
    result = EvalResult(decoders, [], sum(a.duration for a in decoders[0].audio), 5.0)
    return eval_report(result, title=f"{n} synthetic utterances")


@pytest.fixture(scope="module")
def thousand(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("thousand")
    report = synthetic_report(1000)
    write_eval_page(folder / "r.html", report)
    write_report(folder / "r.jsonl", report.rows)
    return folder


def test_a_thousand_utterances_stay_well_under_5_mb(thousand: Path) -> None:
    size = (thousand / "r.html").stat().st_size
    assert size < 3_000_000, f"{size / 1e6:.2f} MB"
    rows = jsonl(thousand / "r.jsonl")
    assert len(rows) == 2000 and sum(len(r["hyp"].split()) for r in rows) > 30_000
    assert page_data((thousand / "r.html").read_text(encoding="utf-8"))["rows"] == rows


def test_a_report_path_of_unknown_kind_fails_before_any_work(run: EvalRun, tmp_path) -> None:
    from report_pages import invoke

    r = invoke("eval", run.manifest, "-m", tmp_path / "no-model", "--report", tmp_path / "r.txt")
    assert r.exit_code == 2 and "r.txt" in r.stderr and ".html" in r.stderr
    assert not (tmp_path / "r.txt").exists()


# --------------------------------------------------------------------------- in Chromium

needs_chromium = pytest.mark.skipif(find_chromium() is None, reason=SKIP_REASON)


@pytest.fixture(scope="module")
def browser():
    with Browser(width=1280, height=900) as b:
        yield b


def nothing_fetched(browser: Browser, root: Path) -> None:
    """Every request the page made is the page itself, an audio file under ``root`` or an
    inline ``data:`` image (the browser's own media controls)."""
    for url in browser.requests():
        if url.startswith("data:"):
            continue
        assert url.startswith(root.resolve().as_uri() + "/"), url


def column(browser: Browser, n: int) -> list[str]:
    """The text of column ``n`` (1-based) of the visible rows, top to bottom."""
    return browser.evaluate(
        "Array.from(document.querySelectorAll('#utterances tbody tr'))"
        f".filter(tr => !tr.hidden).map(tr => tr.cells[{n - 1}].textContent)"
    )


@needs_chromium
def test_the_page_in_chromium_shows_every_utterance_with_the_jsonl_numbers(
    run: EvalRun, browser: Browser, tmp_path: Path
) -> None:
    browser.open(file_url(run.page))
    rows = jsonl(run.jsonl)
    assert browser.evaluate("document.querySelectorAll('#utterances tbody tr').length") == 13
    ids = column(browser, 2)
    for d, name in enumerate(["greedy", "beam"]):
        wer = {r["id"]: f"{100 * r['wer']:.1f}" for r in rows if r["decoder"] == name}
        assert column(browser, 4 + 2 * d) == [wer[i] for i in ids]
        cell = f"#summary tr[data-decoder={name}] td[data-key=wer]"
        assert browser.evaluate(f"document.querySelector('{cell}').textContent") == (
            f"{100 * corpus_wer(rows, name):.2f}%"
        )
    assert "missing.wav" in browser.evaluate("document.getElementById('failed').textContent")
    assert browser.evaluate("document.getElementById('shown').textContent") == "showing 13 of 13"

    png = browser.screenshot()
    (tmp_path / "page.png").write_bytes(png)
    pixels = png_pixels(png)
    assert pixels.shape[:2] == (900, 1280)
    assert png_colours(png) > 300  # text, charts, coloured errors: not a blank page
    assert (pixels[..., :3] < 250).any(axis=2).mean() > 0.05

    assert browser.console_errors() == []
    nothing_fetched(browser, run.root)


@needs_chromium
def test_sorting_and_filtering(run: EvalRun, browser: Browser) -> None:
    browser.open(file_url(run.page))
    rows = {(r["decoder"], r["id"]): r for r in jsonl(run.jsonl)}

    browser.click("#utterances thead th:nth-child(4)")  # greedy's WER
    wers = [float(x) for x in column(browser, 4)]
    assert wers == sorted(wers) and wers[0] < wers[-1]
    browser.click("#utterances thead th:nth-child(4)")
    assert [float(x) for x in column(browser, 4)] == sorted(wers, reverse=True)
    browser.click("#utterances thead th:nth-child(2)")  # the ids, alphabetically
    assert column(browser, 2) == sorted(column(browser, 2), key=str.lower)

    browser.click("#filter")
    browser.call("Input.insertText", {"text": "stella"})
    wanted = {
        i
        for (_, i), r in rows.items()
        if "stella" in " ".join([i, r["ref"], r["hyp"], r["reference"], r["hypothesis"]])
    }
    assert set(column(browser, 2)) == wanted and len(wanted) == 1
    browser.evaluate("filter.value = ''; filter.dispatchEvent(new Event('input'))")

    def choose(value: str) -> set[str]:
        browser.evaluate(f"show.value = '{value}'; show.dispatchEvent(new Event('change'))")
        return set(column(browser, 2))

    ids = {i for _, i in rows}
    wrong = {
        i for (_, i), r in rows.items() if r["substitutions"] + r["deletions"] + r["insertions"]
    }
    assert choose("errors") == wrong
    assert choose("correct") == ids - wrong  # greedy errs in every one: none (see below)
    differ = {i for i in ids if rows["greedy", i]["hyp"] != rows["beam", i]["hyp"]}
    assert choose("differ") == differ  # every one here; the next test has some alike
    browser.click("#filter")
    browser.call("Input.insertText", {"text": "glitters"})  # both filters at once
    assert set(column(browser, 2)) == {"audio/s05.wav", f"audio/{ODD_NAME}"}
    assert browser.evaluate("document.getElementById('shown').textContent") == "showing 2 of 13"
    assert browser.console_errors() == []


@needs_chromium
def test_a_click_plays_the_audio_and_lights_up_each_word_as_it_is_said(
    run: EvalRun, browser: Browser
) -> None:
    browser.open(file_url(run.page))
    rows = {(r["decoder"], r["id"]): r for r in jsonl(run.jsonl)}
    for n, name in ((2, "audio/s01.wav"), (7, f"audio/{ODD_NAME}")):
        browser.click(f"#utterances tbody tr:nth-child({n})")
        assert browser.evaluate(
            f"document.querySelector('#utterances tbody tr:nth-child({n})')"
            ".classList.contains('playing')"
        )
        browser.wait_for("player.currentTime > 0.3")
        assert browser.evaluate("player.src") == (run.root / "set" / name).resolve().as_uri()
        assert browser.evaluate("document.getElementById('player-status').textContent") == (
            f"Playing {name}"
        )
    # While it plays, the word lit up in each decoder's hypothesis is the one whose time
    # (from the .jsonl's hyp_times) holds the current time.
    lit = browser.wait_for(
        "(() => { const t = player.currentTime; const lit = Array.from("
        "document.querySelectorAll('tr.playing .al')).map(div => {"
        " const i = div.querySelector('i.now'); return i && [+div.dataset.r, +i.dataset.k]; });"
        " return lit.every(x => x) && [t, lit, player.currentTime]; })()"
    )
    before, found, after = lit
    data = page_data(run.page.read_text(encoding="utf-8"))
    for r, k in found:
        row = data["rows"][r]
        assert rows[row["decoder"], row["id"]] == row
        start, end = row["hyp_times"][k]
        assert start - 0.25 <= after and before <= end + 0.25  # a frame or a few late
    browser.evaluate("player.pause()")
    assert browser.console_errors() == []
    nothing_fetched(browser, run.root)


@needs_chromium
def test_audio_that_cannot_be_reached_from_where_the_page_is_is_said(
    run: EvalRun, browser: Browser, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere" / "copy.html"
    elsewhere.parent.mkdir()
    shutil.copy(run.page, elsewhere)
    browser.open(file_url(elsewhere))
    browser.click("#utterances tbody tr:nth-child(1)")
    browser.wait_for("document.getElementById('player-status').className === 'bad'")
    said = browser.evaluate("document.getElementById('player-status').textContent")
    assert said.startswith("Cannot load ../set/audio/s00.wav from where this page is opened")
    assert browser.evaluate(
        "document.querySelector('#utterances tbody tr:nth-child(1)').classList"
        ".contains('unreachable')"
    )
    # The browser logs the file it could not load; nothing else went wrong.
    assert all("s00.wav" in e for e in browser.console_errors())
    assert not [e for e in browser.events if e["method"] == "Runtime.exceptionThrown"]


@needs_chromium
def test_a_point_of_the_scatter_plot_shows_its_utterance(run: EvalRun, browser: Browser) -> None:
    browser.open(file_url(run.page))
    # The last point drawn is on top of any it overlaps.
    n = browser.evaluate("document.querySelector('#scatter-beam circle:last-of-type').dataset.u")
    browser.click("#scatter-beam circle:last-of-type")
    assert browser.wait_for(
        f"document.querySelector('#utterances tbody tr[data-u=\"{n}\"]').classList"
        ".contains('flash')"
    )
    assert browser.console_errors() == []


@needs_chromium
def test_a_thousand_utterances_open_sort_and_filter_in_chromium(
    thousand: Path, browser: Browser
) -> None:
    browser.open(file_url(thousand / "r.html"))
    assert browser.evaluate("document.querySelectorAll('#utterances tbody tr').length") == 1000
    browser.click("#utterances thead th:nth-child(6)")  # beam's WER
    wers = [float(x) for x in column(browser, 6)]
    assert wers == sorted(wers) and len(wers) == 1000
    browser.evaluate("show.value = 'correct'; show.dispatchEvent(new Event('change'))")
    rows = [r for r in jsonl(thousand / "r.jsonl")]
    correct = {
        r["id"]
        for r in rows
        if all(
            x["substitutions"] + x["deletions"] + x["insertions"] == 0
            for x in rows
            if x["id"] == r["id"]
        )
    }
    assert set(column(browser, 2)) == correct and 0 < len(correct) < 1000
    browser.evaluate("show.value = 'differ'; show.dispatchEvent(new Event('change'))")
    by = {(r["decoder"], r["id"]): r["hyp"] for r in rows}
    differ = {i for d, i in by if by["greedy", i] != by["beam", i]}
    assert set(column(browser, 2)) == differ and 0 < len(differ) < 1000
    assert browser.console_errors() == []


@needs_chromium
def test_the_tune_page_maps_wer_over_alpha_and_beta(tuned: TuneRun, browser: Browser) -> None:
    assert tuned.result.exit_code == 1  # the missing file again; the rest is tuned
    rows = jsonl(tuned.jsonl)
    page = tuned.page.read_text(encoding="utf-8")
    assert page_data(page)["rows"] == rows and len(rows) == 16
    assert not re.search(r"https?:", page.replace("http-equiv", ""))
    best = rows[0]
    assert f"best: --alpha {best['alpha']:g} --beta {best['beta']:g} " in tuned.result.stdout

    browser.open(file_url(tuned.page))
    assert browser.evaluate("document.querySelectorAll('#heatmap g.cell').length") == 16
    chosen = browser.evaluate(
        "(() => { const g = document.querySelectorAll('#heatmap g.cell.best'); "
        "return [g.length, g[0].dataset.alpha, g[0].dataset.beta]; })()"
    )
    assert chosen == [1, f"{best['alpha']:g}", f"{best['beta']:g}"]
    # Every cell shows its pair's WER from the .jsonl.
    cells = browser.evaluate(
        "Array.from(document.querySelectorAll('#heatmap g.cell')).map(g => "
        "[g.dataset.alpha, g.dataset.beta, g.querySelector('text').textContent])"
    )
    expected = {(f"{r['alpha']:g}", f"{r['beta']:g}"): f"{100 * r['wer']:.2f}" for r in rows}
    assert {(a, b): w for a, b, w in cells} == expected
    png = browser.screenshot()
    assert png_colours(png) > 100
    assert browser.console_errors() == []
    nothing_fetched(browser, tuned.page.parent)


def test_browser_helper_reads_pngs_exactly() -> None:
    """``png_pixels`` against a PNG written with every filter type by hand."""
    import struct
    import zlib

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)
    raw = b""
    prior = np.zeros(12, np.int32)
    for y, kind in enumerate([0, 1, 2, 3, 4]):
        line = image[y].reshape(-1).astype(np.int32)
        out = []
        for i in range(12):
            left = line[i - 3] if i >= 3 else 0
            up, upleft = prior[i], (prior[i - 3] if i >= 3 else 0)
            p = left + up - upleft
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - upleft)
            paeth = left if pa <= pb and pa <= pc else (up if pb <= pc else upleft)
            pred = [0, left, up, (left + up) // 2, paeth][kind]
            out.append((line[i] - pred) & 255)
        raw += bytes([kind, *out])
        prior = line

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 5, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    assert (png_pixels(png) == image).all()
    assert png_colours(png) == len({tuple(p) for p in image.reshape(-1, 3)})
    with pytest.raises(ValueError):
        png_pixels(b"GIF89a")
