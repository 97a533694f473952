"""``-m`` with a model file OpenVINO reads (issue 25): an IR as the Open Model Zoo's
``omz_converter`` writes it for the model card ``wav2vec2-base`` (``.xml`` + ``.bin``,
FP32 and FP16, nothing beside it) and an ``.onnx`` file (``models/ir_file.py``,
``inference/openvino_backend.py``, ``open_model_file``).

The files are made once per session as OMZ makes them, from the trained model in
``tests/assets/espeak-tiny-en``, whose alphabet is the card's: ``torch.onnx.export`` with
input ``inputs``, output ``logits`` and dynamic axes, then ``openvino.convert_model`` and
``save_model`` without and with FP16 compression, and once with the static input shape of
OMZ's ``input_info`` ([1, 30480]). Each must give the folder's text and word times on
espeak-ng speech; the broken ones (an output of another size, another frame geometry, a
``.bin`` cut short, a ``vocab.json`` that does not fit) are refused in one line naming the
file.
"""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from speech import TRAINED_MODEL, Speech

from w2v2cli import Transcriber
from w2v2cli.cli import main
from w2v2cli.errors import ModelError
from w2v2cli.models import locate_model
from w2v2cli.models.ir_file import CARD_TOKENS, card_vocabulary
from w2v2cli.models.ref import IR, ONNX
from w2v2cli.options import ModelOptions, RunOptions

#: The card's alphabet as its README lists it (https://github.com/openvinotoolkit/
#: open_model_zoo, models/public/wav2vec2-base/README.md, "Model alphabet").
CARD_README = "[pad] [s] [/s] [unk] | E T A O N I H S R D L U M W C F G Y P B V K ' X J Q Z".split()


@dataclass(frozen=True)
class ModelFiles:
    onnx: Path
    fp32: Path  # public/wav2vec2-base/FP32/wav2vec2-base.xml
    fp16: Path
    static: Path  # the input shape fixed at OMZ's [1, 30480]
    wide: Path  # an .onnx whose output has 40 classes
    strided: Path  # an .onnx whose first convolution has stride 4, not 5


def _export(model, path: Path) -> Path:
    import torch

    class Logits(torch.nn.Module):
        """What OMZ's pytorch_to_onnx exports: the model's logits for ``inputs``."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, inputs):
            return self.inner(inputs).logits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Logits(model.eval()),
            (torch.zeros(1, 30480),),
            str(path),
            input_names=["inputs"],
            output_names=["logits"],
            dynamic_axes={
                "inputs": {0: "batch_size", 1: "sequence_len"},
                "logits": {0: "batch_size", 1: "sequence_len"},
            },
            dynamo=False,
        )
    return path


@pytest.fixture(scope="session")
def model_files(tmp_path_factory) -> ModelFiles:
    import openvino as ov
    import torch
    from transformers import Wav2Vec2ForCTC

    root = tmp_path_factory.mktemp("omz")
    onnx = _export(Wav2Vec2ForCTC.from_pretrained(TRAINED_MODEL), root / "wav2vec2-base.onnx")
    model = ov.convert_model(onnx)
    irs = {}
    for name, fp16 in (("FP32", False), ("FP16", True), ("static", False)):
        if name == "static":
            model.reshape({model.inputs[0]: ov.PartialShape([1, 30480])})
        irs[name] = root / "public" / "wav2vec2-base" / name / "wav2vec2-base.xml"
        irs[name].parent.mkdir(parents=True)
        ov.save_model(model, irs[name], compress_to_fp16=fp16)
    wide = Wav2Vec2ForCTC.from_pretrained(TRAINED_MODEL)
    torch.manual_seed(0)
    wide.lm_head = torch.nn.Linear(wide.lm_head.in_features, 40)
    strided = Wav2Vec2ForCTC.from_pretrained(TRAINED_MODEL, conv_stride=[4, 2, 2, 2, 2, 2, 2])
    (root / "wide").mkdir()
    (root / "strided").mkdir()
    return ModelFiles(
        onnx=onnx,
        fp32=irs["FP32"],
        fp16=irs["FP16"],
        static=irs["static"],
        wide=_export(wide, root / "wide" / "model.onnx"),
        strided=_export(strided, root / "strided" / "model.onnx"),
    )


def transcriber(model: Path | str, batch_size: int | None = None, **kw) -> Transcriber:
    options = RunOptions(model=ModelOptions(model=str(model), **kw), batch_size=batch_size)
    return Transcriber(options)


def w2v2(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def folder_transcripts(speech: Speech):
    """The folder's own transcripts (the torch backend), the reference for every file."""
    t = transcriber(TRAINED_MODEL, backend="torch")
    try:
        return t.transcribe_files([speech.paths[0], speech.long])
    finally:
        t.close()


def test_the_espeak_models_alphabet_is_the_cards():
    vocab = json.loads((TRAINED_MODEL / "vocab.json").read_text())
    ordered = sorted(vocab, key=vocab.get)
    as_card = [t.replace("<", "[").replace(">", "]") for t in ordered]
    assert as_card == CARD_README
    assert list(CARD_TOKENS) == ordered
    card = card_vocabulary()
    assert (card.blank_id, card.delimiter_id, card.size) == (0, 4, 32)
    assert card.special_ids == frozenset({0, 1, 2, 3})


def test_model_files_are_kinds_of_model_ref(model_files: ModelFiles):
    bin_file = model_files.fp32.with_suffix(".bin")
    for name, kind, path in (
        (model_files.fp32, IR, model_files.fp32),
        (bin_file, IR, model_files.fp32),  # -m x.bin names its .xml
        (model_files.onnx, ONNX, model_files.onnx),
    ):
        ref = locate_model(str(name))
        assert (ref.kind, ref.path, ref.folder, ref.is_model_file) == (kind, path, None, True)
        with pytest.raises(ModelError, match="holds the network alone"):
            ref.check_downloadable()  # transformers never reads it
    with pytest.raises(ModelError) as caught:  # OMZ's folder: the file in it is named
        locate_model(str(model_files.fp32.parent))
    assert str(caught.value) == (
        f"'{model_files.fp32.parent}' is not a model folder: it has no config.json (for the "
        f"model file in it, give -m {model_files.fp32})"
    )


@pytest.mark.parametrize("which", ["fp32", "fp16", "static", "onnx"])
def test_same_text_and_word_times_as_the_folder(
    which, model_files: ModelFiles, speech: Speech, folder_transcripts
):
    t = transcriber(getattr(model_files, which))
    try:
        assert t.engine.backend == "openvino"  # --backend auto picks it
        ours = t.transcribe_files([speech.paths[0], speech.long])
    finally:
        t.close()
    assert [x.text for x in ours] == [x.text for x in folder_transcripts]
    for mine, ref in zip(ours, folder_transcripts, strict=True):
        assert [w.text for w in mine.words] == [w.text for w in ref.words]
        # the same frames (320 samples, 20 ms), so the same times; FP16 may move an edge
        slack = 0.0201 if which == "fp16" else 1e-6
        for a, b in zip(mine.words, ref.words, strict=True):
            assert abs(a.start - b.start) <= slack and abs(a.end - b.end) <= slack, (a, b)
    assert ours[-1].words[-1].end > 35  # the long file was chunked with stride and stitched


def test_align_and_eval_run_a_model_file(
    model_files: ModelFiles, speech: Speech, folder_transcripts, tmp_path
):
    text = tmp_path / "fox.txt"
    text.write_text("The quick brown fox jumps over the lazy dog.\n")
    docs = []
    for model, backend in ((model_files.fp32, "auto"), (TRAINED_MODEL, "torch")):
        r = w2v2("align", speech.paths[0], text, "-m", model, "--backend", backend, "--stdout")
        assert r.exit_code == 0, r.stderr
        docs.append(json.loads(r.stdout))
    assert docs[0]["words"] == docs[1]["words"]
    assert [w["text"] for w in docs[0]["words"]][:3] == ["The", "quick", "brown"]
    manifest = tmp_path / "m.jsonl"
    rows = [
        {"audio_filepath": str(p), "text": s}
        for p, s in zip(speech.paths, speech.references, strict=True)
    ]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows[:4]))
    reports = []
    for i, (model, backend) in enumerate(((model_files.onnx, "auto"), (TRAINED_MODEL, "torch"))):
        report = tmp_path / f"r{i}.jsonl"
        r = w2v2("eval", manifest, "-m", model, "--backend", backend, "--report", report, "-q")
        assert r.exit_code == 0, r.stderr
        reports.append([json.loads(x) for x in report.read_text().splitlines()])
    assert [(r["hyp"], r["wer"]) for r in reports[0]] == [(r["hyp"], r["wer"]) for r in reports[1]]
    assert reports[0][0]["hyp"] == folder_transcripts[0].text.lower()  # as eval normalises


def _beside(model_files: ModelFiles, tmp_path: Path, vocab: object) -> Path:
    """The FP32 IR copied into a folder of its own with ``vocab`` as its vocab.json."""
    folder = tmp_path / "with-vocab"
    folder.mkdir()
    for f in model_files.fp32.parent.iterdir():
        shutil.copy(f, folder / f.name)
    text = vocab if isinstance(vocab, str) else json.dumps(vocab)
    (folder / "vocab.json").write_text(text)
    return folder / model_files.fp32.name


def test_a_vocab_json_beside_the_file_is_its_alphabet(
    model_files: ModelFiles, speech: Speech, folder_transcripts, tmp_path
):
    vocab = json.loads((TRAINED_MODEL / "vocab.json").read_text())
    vocab["A"], vocab["E"] = vocab["E"], vocab["A"]  # a vocabulary that differs: A and E swap
    t = transcriber(_beside(model_files, tmp_path, vocab))
    try:
        ours = [x.text for x in t.transcribe_files(speech.paths[:1])]
    finally:
        t.close()
    swap = str.maketrans("AE", "EA")
    assert ours == [folder_transcripts[0].text.translate(swap)]
    assert ours != [folder_transcripts[0].text]


@pytest.mark.parametrize(
    ("vocab", "reason"),
    [
        ("{not json", "cannot be read as a JSON token table"),
        ({"a": 0, "b": 2}, "its ids must run from 0 to 1, each once"),
        ({"A": 0, "|": 1}, "has no pad token (<pad> or [pad])"),
        (
            {**{t: i for i, t in enumerate(CARD_TOKENS)}, "É": 32},
            "outputs 32 classes per frame, but the alphabet of {vocab} has 33 tokens",
        ),
    ],
    ids=["not-json", "gap", "no-blank", "one-more"],
)
def test_a_vocab_json_that_does_not_fit_is_one_line(
    model_files: ModelFiles, speech: Speech, tmp_path, vocab, reason
):
    model = _beside(model_files, tmp_path, vocab)
    expected = reason.format(vocab=model.parent / "vocab.json")
    r = w2v2("transcribe", speech.paths[0], "-m", model, "-o", tmp_path / "out")
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1, r.stderr
    assert expected in lines[0] and str(model.parent) in lines[0], lines[0]
    assert not (tmp_path / "out").exists()


def _refused(model: Path, tmp_path: Path, speech: Speech, *options: str) -> str:
    """The one line ``transcribe`` and ``eval`` answer with ``-m model``."""
    manifest = tmp_path / "m.tsv"
    manifest.write_text(f"path\ttext\n{speech.paths[0]}\tTHE\n")
    found = []
    for args in (
        ("transcribe", speech.paths[0], "-o", tmp_path / "out"),
        ("eval", manifest),
    ):
        r = w2v2(*args, "-m", model, *options)
        lines = r.stderr.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1, (args, r.stderr)
        found.append(lines[0])
    assert found[0] == found[1]
    assert not (tmp_path / "out").exists()
    return found[0]


def test_an_output_of_another_size_is_refused(model_files: ModelFiles, speech, tmp_path):
    line = _refused(model_files.wide, tmp_path, speech)
    assert line == (
        f"error: {model_files.wide} cannot run as a CTC speech model: it outputs 40 classes "
        "per frame, but the wav2vec2-base card's alphabet has 32 tokens"
    )


def test_another_frame_geometry_is_refused(model_files: ModelFiles, speech, tmp_path):
    line = _refused(model_files.strided, tmp_path, speech)
    assert line.startswith(f"error: {model_files.strided} cannot run as a CTC speech model:")
    # stride 4 instead of 5 in the first convolution: 62 frames for one second, not 49
    assert "outputs 62 frames for 16000 samples where wav2vec2-base's geometry" in line
    assert "gives 49, so its frames cannot be timed" in line


def test_a_bin_cut_short_is_one_line_naming_it(model_files: ModelFiles, speech, tmp_path):
    folder = tmp_path / "cut"
    shutil.copytree(model_files.fp32.parent, folder)
    weights = folder / "wav2vec2-base.bin"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    line = _refused(folder / "wav2vec2-base.xml", tmp_path, speech)
    assert str(weights) in line and "cut short" in line, line
    weights.unlink()
    line = _refused(folder / "wav2vec2-base.xml", tmp_path, speech)
    assert line == (
        f"error: {folder / 'wav2vec2-base.xml'} is an OpenVINO IR without its weights: "
        "wav2vec2-base.bin is not beside it"
    )


def test_torch_and_cuda_are_refused_in_one_line(model_files: ModelFiles, speech, tmp_path):
    for options in (("--backend", "torch"), ("--device", "cuda")):
        line = _refused(model_files.onnx, tmp_path, speech, *options)
        assert line == (
            f"error: {model_files.onnx} is a model file OpenVINO reads: it runs on the "
            "OpenVINO backend only, on the CPU (--backend openvino or auto, --device cpu "
            "or auto)"
        )
    line = _refused(model_files.fp32, tmp_path, speech, "--dtype", "int8", "--int8", "full")
    assert "full quantization calibrated on audio is not done for it" in line


def test_commands_that_need_transformers_refuse_it_in_one_line(model_files, tmp_path):
    r = w2v2("export", model_files.fp32, "-o", tmp_path / "exported")
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1, r.stderr
    assert lines[0] == (
        f"error: {model_files.fp32} is an OpenVINO IR file: it holds the network alone, "
        "which transcribe, eval and align run on the OpenVINO backend; this needs a "
        "transformers model folder, a hub id or a checkpoint file"
    )
    r = w2v2("languages", model_files.fp32)
    assert r.exit_code == 2
    assert (
        r.stderr.strip() == f"error: {model_files.fp32} is a model file: it has a single vocabulary"
    )


def test_lm_build_takes_the_files_alphabet(model_files, tmp_path):
    """``lm build --model x.xml``: the text is normalised to the card's alphabet (upper
    case, ``'`` kept, other characters dropped), as for the model's folder."""
    text = tmp_path / "t.txt"
    text.write_text("Hello, world!\nit's a small world\n" * 5)
    out = tmp_path / "lm.arpa"
    r = w2v2(
        "lm", "build", text, "-o", out, "--arpa-only", "--order", "2", "--model", model_files.fp32
    )
    assert r.exit_code == 0, r.stderr
    unigrams = out.read_text(encoding="utf-8").split("\\2-grams:")[0]
    for word in ("HELLO", "WORLD", "IT'S", "SMALL"):
        assert f"\t{word}" in unigrams
    assert "hello" not in unigrams and "," not in unigrams


def test_int8_compresses_the_weights_in_memory(model_files: ModelFiles, speech: Speech):
    before = model_files.fp32.with_suffix(".bin").read_bytes()
    t = transcriber(model_files.fp32, dtype="int8", int8="weights")
    try:
        assert t.engine.loaded.dtype == "int8"
        ours = [x.text for x in t.transcribe_files(speech.paths[:4])]
    finally:
        t.close()
    import jiwer

    assert jiwer.cer(speech.references[:4], ours) < 0.3  # it still recognises speech
    assert model_files.fp32.with_suffix(".bin").read_bytes() == before
    assert sorted(p.name for p in model_files.fp32.parent.iterdir()) == [
        "wav2vec2-base.bin",
        "wav2vec2-base.xml",
    ]


def test_a_static_ir_runs_batches_of_any_size(
    model_files: ModelFiles, speech: Speech, folder_transcripts
):
    """OMZ's IR has the fixed input [1, 30480]: made dynamic, it runs several equal-length
    chunks in one request (the same file twice) and any length, with the folder's text."""
    t = transcriber(model_files.static, batch_size=4)
    try:
        ours = t.transcribe_files([speech.paths[0], speech.paths[0], speech.long])
    finally:
        t.close()
    ref = [x.text for x in folder_transcripts]
    assert [x.text for x in ours] == [ref[0], ref[0], ref[1]]


def test_bfloat16_runs_with_openvinos_hint_where_the_cpu_has_it(
    model_files: ModelFiles, speech: Speech, tmp_path
):
    from w2v2cli.inference.openvino_backend import cpu_capabilities

    if "BF16" not in cpu_capabilities():
        line = _refused(model_files.fp32, tmp_path, speech, "--dtype", "bfloat16")
        assert "--dtype bfloat16 needs a CPU with native bfloat16" in line
        return
    t = transcriber(model_files.fp32, dtype="bfloat16")
    try:
        assert (t.engine.loaded.dtype, t.engine.runner.backend.precision) == ("bfloat16",) * 2
        ours = [x.text for x in t.transcribe_files(speech.paths[:4])]
    finally:
        t.close()
    import jiwer

    assert jiwer.cer(speech.references[:4], ours) < 0.3  # it still recognises speech


def test_a_preprocessor_config_beside_the_file_sets_the_normalisation(
    model_files: ModelFiles, tmp_path
):
    from w2v2cli.models.light import load_model_file

    assert load_model_file(locate_model(str(model_files.onnx))).feature_extractor.do_normalize
    folder = tmp_path / "exported"
    folder.mkdir()
    shutil.copy(model_files.onnx, folder / "model.onnx")
    config = json.loads((TRAINED_MODEL / "processor_config.json").read_text())
    extractor = {**config["feature_extractor"], "do_normalize": False}
    (folder / "preprocessor_config.json").write_text(json.dumps(extractor))
    parts = load_model_file(locate_model(str(folder / "model.onnx")))
    assert (parts.feature_extractor.do_normalize, parts.sampling_rate) == (False, 16000)
