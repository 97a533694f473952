"""``w2v2 lm tune`` and ``tune.py``: alpha/beta search on constructed log-probabilities whose
best weights are known, a real KenLM model, the process pool, attrs.json updates, the CLI.

The constructed corpus (``ITEMS``) has three utterances, each failing in a known way:

1. "THE CAT SAT ON THE MAT" with the C heard as B (0.50 vs 0.45): only the LM (alpha > 0)
   fixes BAT → CAT.
2. "THE DOG SAT ON THE MAT" with a faint "A" between ON and THE: a word bonus (beta) that is
   too large for the LM weight inserts it.
3. "A DOG SAT ON A HAT" whose second "A" is weak: a beta that is too small (negative)
   deletes it; so does a large alpha with a small beta (the LM prefers fewer words).

On the grid below the best pair is therefore (0.25, 0): the smallest alpha that fixes CAT,
and the smallest beta there that neither deletes nor inserts.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from lm_fixtures import EN_UPPER, english_sentences, make_vocab, require_kenlm_tools

from w2v2cli.cli import main
from w2v2cli.decoding import pool as pool_module
from w2v2cli.decoding.beam import BeamDecoder, beam_settings
from w2v2cli.errors import ConfigError, LMError
from w2v2cli.evaluation import LogitsStore, ManifestEntry, aggregate, utterance_scores
from w2v2cli.evaluation.tune import (
    TuneResult,
    TuneRow,
    grid_pairs,
    grid_values,
    random_pairs,
    tune,
    tune_pairs,
)
from w2v2cli.lm import attrs_path, update_lm_attrs
from w2v2cli.options import DecodeOptions
from w2v2cli.records import Emissions

UPPER = make_vocab(EN_UPPER)
_IDS = {t: i for i, t in enumerate(EN_UPPER)}
ALPHAS = [0.0, 0.25, 0.5, 2.0]
BETAS = [-2.0, 0.0, 2.0, 8.0]
BEST = (0.25, 0.0)


def _emissions(frames: list[dict[str, float]]) -> Emissions:
    """Log-probabilities from per-frame probabilities; the rest of each frame's mass is
    spread evenly over the other ids."""
    probs = np.zeros((len(frames), UPPER.size))
    for t, frame in enumerate(frames):
        others = [i for tok, i in _IDS.items() if tok not in frame]
        probs[t, others] = (1.0 - sum(frame.values())) / len(others)
        for tok, p in frame.items():
            probs[t, _IDS[tok]] = p
    starts = 0.02 * np.arange(len(frames))
    return Emissions(np.log(probs).astype(np.float32), starts, 0.02, 0.02 * len(frames) + 0.1)


def spell(pattern: str, weak: float = 0.35) -> Emissions:
    """One letter frame and one blank frame per character of ``pattern``. Upper case:
    clear (0.9); lower case: a faint letter (``weak`` against blank); ``_``: a faint word
    boundary; ``@``: a C heard as B (0.50 vs 0.45); space: a clear boundary."""
    frames: list[dict[str, float]] = []
    for ch in pattern:
        if ch == " ":
            frames.append({"|": 0.9})
        elif ch == "_":
            frames.append({"|": weak, "<pad>": 0.95 - weak})
        elif ch == "@":
            frames.append({"B": 0.50, "C": 0.45})
        elif ch.islower():
            frames.append({ch.upper(): weak, "<pad>": 0.95 - weak})
        else:
            frames.append({ch: 0.9})
        frames.append({"<pad>": 0.9})
    return _emissions(frames)


ITEMS = [
    ("THE CAT SAT ON THE MAT", spell("THE @AT SAT ON THE MAT")),
    ("THE DOG SAT ON THE MAT", spell("THE DOG SAT ON a_THE MAT", weak=0.35)),
    ("A DOG SAT ON A HAT", spell("A DOG SAT ON a_HAT", weak=0.40)),
]


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder with language_model/{attrs.json, unigrams.txt, lm.bin}, built once
    with the real ``build_lm`` from the generated English corpus."""
    require_kenlm_tools()
    from w2v2cli.lm import build_lm

    root = tmp_path_factory.mktemp("tune_lm")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(english_sentences()), encoding="utf-8")
    build_lm([corpus], root / "build" / "lm.bin", 3, vocab=UPPER, model_dir_out=root / "model")
    return root / "model"


def options(lm_dir: Path) -> DecodeOptions:
    return DecodeOptions(decoder="beam", lm=lm_dir / "language_model")


@pytest.fixture(autouse=True)
def _every_engine(beam_engine: str) -> str:
    """Every test runs on both engines: pyctcdecode switches weights in place,
    ctc-beam-decoder rebuilds its decoder (see ``decoding.beam_engines``)."""
    return beam_engine


@pytest.fixture(scope="module")
def grid_result(lm_dir: Path, beam_engine: str) -> TuneResult:
    return tune(ITEMS, UPPER, options(lm_dir), ALPHAS, BETAS, workers=0)


def by_pair(rows: tuple[TuneRow, ...]) -> dict[tuple[float, float], TuneRow]:
    return {(r.alpha, r.beta): r for r in rows}


# --------------------------------------------------------------------------- library


def test_grid_finds_the_known_best_pair(grid_result: TuneResult) -> None:
    result = grid_result
    rows = by_pair(result.rows)
    assert len(result.rows) == len(ALPHAS) * len(BETAS) and result.utterances == 3
    assert (result.best.alpha, result.best.beta) == BEST
    assert result.best.wer == 0.0 and result.best.cer == 0.0
    # Without the LM, BAT stays (a substitution) whatever beta is.
    for beta in BETAS:
        assert rows[(0.0, beta)].score.words.substitutions >= 1
    # A word bonus too large for the LM weight inserts the faint A; too small deletes.
    assert rows[(0.25, 8.0)].score.words.insertions >= 1
    assert rows[(0.25, -2.0)].score.words.deletions >= 1
    # Sorted by WER; ties by smaller alpha, then smaller beta.
    keys = [(r.score.words.errors, r.alpha, r.beta) for r in result.rows]
    assert keys == sorted(keys)
    assert [r.wer for r in result.rows] == sorted(r.wer for r in result.rows)
    perfect = sorted((r.alpha, r.beta) for r in result.rows if r.wer == 0)
    assert perfect[0] == BEST and len(perfect) > 1  # a region, of which the tie-break chose


def test_switching_weights_equals_a_fresh_decoder(grid_result: TuneResult, lm_dir: Path) -> None:
    """Switching weights on one decoder (``BeamCore.set_weights``) gives exactly what a
    decoder built with those weights (what ``w2v2 eval --alpha A --beta B`` uses) gives."""
    rows = by_pair(grid_result.rows)
    for alpha, beta in [(0.0, 0.0), (0.25, 0.0), (0.25, 8.0), (2.0, 0.0), (2.0, 8.0)]:
        opts = DecodeOptions(lm=lm_dir / "language_model", alpha=alpha, beta=beta, workers=0)
        with BeamDecoder(UPPER, opts) as decoder:
            hyps = [decoder.decode(em).text for _, em in ITEMS]
        score = aggregate(utterance_scores([ref for ref, _ in ITEMS], hyps))
        assert rows[(alpha, beta)].score == score, (alpha, beta, hyps)


def test_pool_equals_in_process_and_is_built_once(
    grid_result: TuneResult, lm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pools: list[object] = []
    submitted: list[tuple[object, ...]] = []

    class CountingPool(pool_module.ProcessPoolExecutor):
        def __init__(self, *args: object, **kwargs: object) -> None:
            pools.append(kwargs.get("max_workers"))
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]

        def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
            submitted.append(args)
            return super().submit(fn, *args, **kwargs)

    monkeypatch.setattr(pool_module, "ProcessPoolExecutor", CountingPool)
    seen: list[TuneRow] = []
    pooled = tune(ITEMS, UPPER, options(lm_dir), ALPHAS, BETAS, workers=2, on_result=seen.append)
    assert pooled.workers == 2
    assert pooled.rows == grid_result.rows  # same scores, same order
    assert sorted(seen, key=TuneRow.sort_key) == list(pooled.rows)
    assert pools == [2]  # one pool for the whole search
    # Tasks carry numbers only: the log-probabilities went to the workers once.
    # (WorkerPool submits ``_run(task, args)``: the task's own arguments are args[1].)
    assert len(submitted) == len(ALPHAS) * len(BETAS)
    assert all(isinstance(a, (int, float)) for args in submitted for a in args[1])

    # Fewer pairs than workers: each pair is split into utterance shards.
    submitted.clear()
    single = tune_pairs(ITEMS, UPPER, options(lm_dir), [BEST], workers=2)
    assert len(submitted) == 2 and single.rows == (by_pair(grid_result.rows)[BEST],)


def test_workers_one_and_zero_decode_in_process(lm_dir: Path) -> None:
    pairs = [(0.0, 0.0), (0.5, 2.0)]
    r0 = tune_pairs(ITEMS, UPPER, options(lm_dir), pairs, workers=0)
    r1 = tune_pairs(ITEMS, UPPER, beam_settings(UPPER, options(lm_dir)), pairs, workers=1)
    assert r0.workers == r1.workers == 0 and r0.rows == r1.rows


def test_random_search_is_seeded_and_finds_a_perfect_pair(lm_dir: Path) -> None:
    pairs = random_pairs((0.2, 0.6), (-0.5, 1.5), 6, seed=3)
    assert pairs == random_pairs((0.2, 0.6), (-0.5, 1.5), 6, seed=3)
    assert pairs != random_pairs((0.2, 0.6), (-0.5, 1.5), 6, seed=4)
    assert len(pairs) == 6
    assert all(0.2 <= a <= 0.6 and -0.5 <= b <= 1.5 for a, b in pairs)
    assert all(round(a, 3) == a and round(b, 3) == b for a, b in pairs)
    result = tune_pairs(ITEMS, UPPER, options(lm_dir), pairs, workers=0)
    assert len(result.rows) == 6 and result.best.wer == 0.0
    perfect = [(r.alpha, r.beta) for r in result.rows if r.wer == 0.0]
    assert (result.best.alpha, result.best.beta) == min(perfect)


def test_arpa_lm_tunes_to_the_same_result_and_warns_on_ctc_beam_decoder(
    grid_result: TuneResult, tmp_path: Path, beam_engine: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An ARPA LM gives the binary LM's scores; ctc-beam-decoder, which parses it again for
    every pair, says so once and recommends a binary LM."""
    from w2v2cli.lm import build_lm

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(english_sentences()), encoding="utf-8")
    arpa = build_lm([corpus], tmp_path / "lm.arpa", 3, vocab=UPPER, binary=False).lm_path
    pairs = [BEST, (0.25, 8.0)]
    with caplog.at_level("WARNING", logger="w2v2cli"):
        result = tune_pairs(ITEMS, UPPER, DecodeOptions(lm=arpa), pairs, workers=0)
    assert by_pair(result.rows) == {p: by_pair(grid_result.rows)[p] for p in pairs}
    warned = caplog.text.count("is parsed again for every (alpha, beta) pair")
    assert warned == (1 if beam_engine == "ctc-beam-decoder" else 0)


def test_search_values() -> None:
    assert grid_values(0, 2, 5) == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert grid_values(-1, 3, 5) == [-1.0, 0.0, 1.0, 2.0, 3.0]
    assert grid_values(0, 0.3, 4) == [0.0, 0.1, 0.2, 0.3]  # not 0.30000000000000004
    assert grid_values(1, 1, 3) == [1.0] and grid_values(0.5, 2, 1) == [0.5]
    assert grid_pairs([0, 1], [2, 2]) == [(0.0, 2.0), (1.0, 2.0)]
    with pytest.raises(ConfigError, match="empty"):
        grid_values(2, 0, 3)
    with pytest.raises(ConfigError, match="empty"):
        random_pairs((0, 1), (3, -1), 2)


def test_shards_cover_every_utterance_once() -> None:
    from w2v2cli.evaluation.tune import MAX_TASK_ITEMS, shards

    for n_items, n_pairs, workers in [(3, 16, 2), (3, 1, 2), (1, 1, 8), (200, 25, 4), (130, 1, 1)]:
        parts = shards(n_items, n_pairs, workers)
        covered = [i for a, b in parts for i in range(a, b)]
        assert covered == list(range(n_items))
        assert all(b - a <= MAX_TASK_ITEMS for a, b in parts)
        if n_pairs < workers:
            assert len(parts) >= min(n_items, -(-workers // n_pairs))


def test_bad_inputs_are_config_errors(lm_dir: Path) -> None:
    with pytest.raises(ConfigError, match="language model"):
        tune(ITEMS, UPPER, DecodeOptions(), [0.5], [1.0], workers=0)
    with pytest.raises(ConfigError, match="no utterances"):
        tune([], UPPER, options(lm_dir), [0.5], [1.0], workers=0)
    with pytest.raises(ConfigError, match="pairs"):
        tune(ITEMS, UPPER, options(lm_dir), [], [1.0], workers=0)
    wrong = Emissions(np.zeros((4, 7), np.float32), np.arange(4) * 0.02, 0.02, 0.1)
    with pytest.raises(ConfigError, match="another model"):
        tune([("A", wrong)], UPPER, options(lm_dir), [0.5], [1.0], workers=0)


# --------------------------------------------------------------------------- attrs.json


def test_update_attrs_keeps_other_keys_and_is_atomic(lm_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(lm_dir, model)
    folder = model / "language_model"
    attrs = folder / "attrs.json"
    original = json.loads(attrs.read_text())
    attrs.write_text(json.dumps({**original, "unk_score_offset": -7.5, "custom": "kept"}))
    os.chmod(attrs, 0o644)
    assert update_lm_attrs(folder, 0.25, 0) == attrs
    data = json.loads(attrs.read_text())
    assert data == {
        **original,
        "unk_score_offset": -7.5,
        "custom": "kept",
        "alpha": 0.25,
        "beta": 0.0,
    }
    assert list(data)[:2] == list(original)[:2]  # key order kept
    assert stat.S_IMODE(attrs.stat().st_mode) == 0o644
    assert sorted(p.name for p in folder.iterdir()) == ["attrs.json", "lm.bin", "unigrams.txt"]
    # A model folder resolves to its language_model/; the decoder then uses the new weights.
    update_lm_attrs(model, 0.5, 2.0)
    with BeamDecoder(UPPER, DecodeOptions(lm=model, workers=0)) as decoder:
        assert (decoder.alpha, decoder.beta) == (0.5, 2.0)
        assert decoder.settings.unk_score_offset == -7.5
    # A language_model/ folder without attrs.json gets one.
    attrs.unlink()
    update_lm_attrs(folder, 1.0, 1.5)
    assert json.loads(attrs.read_text()) == {"alpha": 1.0, "beta": 1.5}


def test_attrs_target_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="neither"):
        attrs_path(tmp_path)
    lm = tmp_path / "language_model"
    lm.mkdir()
    (lm / "attrs.json").write_text("[1, 2]")
    with pytest.raises(LMError, match="attrs.json: does not hold a JSON object"):
        attrs_path(tmp_path)
    (lm / "attrs.json").write_text("{broken")
    with pytest.raises(LMError, match="attrs.json: not valid JSON"):
        update_lm_attrs(lm, 0.5, 1.0)


# --------------------------------------------------------------------------- CLI


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def constructed_logits(tmp_path: Path) -> tuple[Path, Path]:
    """A manifest for ``ITEMS`` and a --save-logits folder holding their emissions, as an
    eval run would have written it (the audio itself is never read)."""
    manifest = tmp_path / "set" / "manifest.jsonl"
    manifest.parent.mkdir()
    lines = [{"audio_filepath": f"u{i}.wav", "text": ref} for i, (ref, _) in enumerate(ITEMS)]
    manifest.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    logits = tmp_path / "logits"
    store = LogitsStore.create(logits, "constructed", None, UPPER)
    for i, (ref, em) in enumerate(ITEMS):
        entry = ManifestEntry(line=i + 1, audio=manifest.parent / f"u{i}.wav", text=ref)
        store.save(i, entry, em)
    return manifest, logits


def table_rows(stdout: str) -> list[list[str]]:
    """The table's data rows as [alpha, beta, WER, CER, S/D/I]."""
    rows = (ln.split() for ln in stdout.splitlines())
    return [f for f in rows if len(f) == 5 and f[2].endswith("%")]


def test_cli_on_saved_logits_prints_table_and_writes_attrs(
    constructed_logits: tuple[Path, Path], lm_dir: Path, tmp_path: Path
) -> None:
    manifest, logits = constructed_logits
    model = tmp_path / "model"
    shutil.copytree(lm_dir, model)
    base = ["lm", "tune", manifest, "--lm", model, "--load-logits", logits, "--decode-workers", 0]
    grid = ["--alphas", ",".join(map(str, ALPHAS)), "--betas", ",".join(map(str, BETAS))]
    # -m names no model: with --load-logits none is loaded.
    r = invoke(*base, *grid, "--write-attrs", model / "language_model", "-m", tmp_path / "none")
    assert r.exit_code == 0, r.output
    rows = table_rows(r.stdout)
    assert len(rows) == len(ALPHAS) * len(BETAS)
    assert rows[0][:4] == ["0.25", "0", "0.00%", "0.00%"]
    wers = [float(row[2].rstrip("%")) for row in rows]
    assert wers == sorted(wers)
    assert "best: --alpha 0.25 --beta 0 " in r.stdout
    assert "[16/16]" in r.stderr and "written to" in r.stderr
    data = json.loads((model / "language_model" / "attrs.json").read_text())
    assert (data["alpha"], data["beta"]) == BEST
    assert data["unk_score_offset"] == -10.0 and data["score_boundary"] is True

    # Random search from the CLI, quietly: only the result on stdout, nothing on stderr.
    ranges = ["--alpha-range", "0.2,0.6", "--beta-range", "-0.5,1.5"]
    r = invoke(*base, "--random", 4, "--seed", 1, *ranges, "-q")
    assert r.exit_code == 0 and r.stderr == ""
    assert len(table_rows(r.stdout)) == 4 and "WER 0.00%" in r.stdout


def test_cli_report_pages_and_rows(
    constructed_logits: tuple[Path, Path], lm_dir: Path, tmp_path: Path
) -> None:
    """--report writes every pair's scores (.jsonl, .csv) and a page whose heat map marks
    the known best pair; the page holds the .jsonl's rows. A random search is drawn as
    points in the alpha/beta plane instead."""
    from w2v2cli.evaluation.html_report import page_data

    manifest, logits = constructed_logits
    base = ["lm", "tune", manifest, "--lm", lm_dir, "--load-logits", logits, "--decode-workers", 0]
    grid = ["--alphas", ",".join(map(str, ALPHAS)), "--betas", ",".join(map(str, BETAS))]
    pages = tmp_path / "pages"
    r = invoke(*base, *grid, "--report", pages / "t.html", "--report", pages / "t.jsonl", "-q")
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in (pages / "t.jsonl").read_text().splitlines()]
    assert [(row["alpha"], row["beta"]) for row in rows] == [
        (float(a), float(b)) for a, b, *_ in table_rows(r.stdout)
    ]
    assert (rows[0]["alpha"], rows[0]["beta"]) == BEST and rows[0]["wer"] == 0.0
    page = (pages / "t.html").read_text(encoding="utf-8")
    assert page_data(page)["rows"] == rows
    assert page.count('<g class="cell') == len(ALPHAS) * len(BETAS)
    assert page.count('<g class="cell best" data-alpha="0.25" data-beta="0">') == 1

    r = invoke(*base, "--random", 5, "--report", pages / "random.html", "-q")
    assert r.exit_code == 0, r.output
    page = (pages / "random.html").read_text(encoding="utf-8")
    assert page.count("<circle cx=") == 5 and page.count('<circle class="chosen"') == 1

    r = invoke(*base, *grid, "--report", pages / "t.pdf")
    assert r.exit_code == 2 and "t.pdf" in r.stderr and ".html" in r.stderr


def test_cli_runs_the_model_once_then_reuses_its_logits(
    group_model: Path, lm_dir: Path, tmp_path: Path
) -> None:
    import soundfile as sf
    from conftest import noise_audio

    sf.write(tmp_path / "a.wav", noise_audio(1.2, seed=5), 16000)
    sf.write(tmp_path / "b.wav", noise_audio(0.8, seed=6), 16000)
    manifest = tmp_path / "m.tsv"
    manifest.write_text("path\ttext\na.wav\tTHE CAT\nb.wav\tA DOG\nmissing.wav\tX\n")
    logits = tmp_path / "logits"
    common = ["--lm", lm_dir, "--alphas", "0,1", "--betas", "0,1", "--decode-workers", "0"]
    first = invoke(
        "lm", "tune", manifest, "-m", group_model, "--save-logits", logits, *common, "-q"
    )
    assert first.exit_code == 1  # the missing file is reported, the rest is tuned
    assert "missing.wav: no such file" in first.stderr
    assert len(list(logits.glob("*.npz"))) == 2
    again = invoke("lm", "tune", manifest, "--load-logits", logits, *common, "-q")
    assert table_rows(again.stdout) == table_rows(first.stdout)
    assert len(table_rows(first.stdout)) == 4 and "best: --alpha" in first.stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--random", "3", "--alphas", "0,1"], "cannot take --alphas"),
        (["--random", "3", "--grid", "4"], "--grid or --random"),
        (["--seed", "3"], "--seed is for --random"),
        (["--alpha-range", "2,0"], "LOW is above HIGH"),
        (["--betas", "x"], "expected numbers"),
        (["--alphas", "1", "--alpha-range", "0,1"], "not both"),
    ],
)
def test_cli_usage_errors(
    constructed_logits: tuple[Path, Path], lm_dir: Path, extra: list[str], message: str
) -> None:
    manifest, logits = constructed_logits
    r = invoke("lm", "tune", manifest, "--lm", lm_dir, "--load-logits", logits, *extra)
    assert r.exit_code == 2 and message in r.stderr
    assert len(r.stderr.strip().splitlines()[-1]) < 200


def test_cli_bad_attrs_target_fails_before_any_work(
    constructed_logits: tuple[Path, Path], lm_dir: Path, tmp_path: Path
) -> None:
    manifest, logits = constructed_logits
    (tmp_path / "empty").mkdir()
    r = invoke(
        "lm",
        "tune",
        manifest,
        "--lm",
        lm_dir,
        "--load-logits",
        logits,
        "--write-attrs",
        tmp_path / "empty",
        "-m",
        tmp_path / "no-model",
    )
    assert r.exit_code == 2 and "neither a language_model/" in r.stderr
    r = invoke("lm", "tune", manifest, "--load-logits", logits)
    assert r.exit_code == 2 and "--lm" in r.stderr
