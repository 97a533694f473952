"""The engine against the transformers ASR pipeline, and batch-size independence, on the
torch backend with random models (the OpenVINO backend's are in test_openvino.py, on a
trained model: random weights make near ties that another kernel's rounding can flip)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import noise_audio

from w2v2cli.options import ChunkOptions, ModelOptions, RunOptions
from w2v2cli.run import Transcriber

SPECIALS = re.compile(r"<s>|</s>|<unk>|<pad>")


def _pipeline_text(model_dir, audio, chunk, stride):
    from transformers import pipeline

    asr = pipeline("automatic-speech-recognition", model=str(model_dir), device="cpu")
    out = asr(audio.copy(), chunk_length_s=chunk, stride_length_s=stride, batch_size=1)
    # The pipeline keeps special tokens for plain CTC (skip_special_tokens=False) and may
    # leave double spaces; we never print special tokens and join words with one space.
    return " ".join(SPECIALS.sub("", out["text"]).split())


@pytest.mark.slow
@pytest.mark.parametrize("family", ["group_model", "layer_model"])
@pytest.mark.parametrize(("chunk", "stride"), [(2.0, (0.4, 0.4)), (3.0, (1.0, 0.5))])
def test_same_text_as_transformers_pipeline(family, chunk, stride, request):
    model_dir = request.getfixturevalue(family)
    audio = noise_audio(9.7, seed=4)  # several chunks long, last one short
    options = RunOptions(
        model=ModelOptions(model=str(model_dir), backend="torch"),
        chunking=ChunkOptions(chunk, *stride),
        batch_size=1,
    )
    ours = Transcriber(options).transcribe_array(audio)
    ref = _pipeline_text(model_dir, audio, chunk, stride)
    assert len(ref.split()) > 5, "the tiny model should emit words for this test to bite"
    assert ours.text == ref


@pytest.mark.parametrize("family", ["group_model", "layer_model"])
def test_text_does_not_depend_on_batch_size(family, request):
    model_dir = request.getfixturevalue(family)
    clips = [noise_audio(s, seed=i) for i, s in enumerate([0.6, 7.5, 2.2, 13.0, 1.1, 4.4])]
    texts = {}
    for bs in (1, 3, 8):
        options = RunOptions(model=ModelOptions(model=str(model_dir), backend="torch"),
                             chunking=ChunkOptions(5.0, 1.0, 1.0), batch_size=bs,
                             max_padding=1.0)  # padded batches even on CPU
        t = Transcriber(options)
        texts[bs] = [
            em.log_probs.argmax(-1)
            for _, em in t.emissions([(lambda c=c: c) for c in clips])
        ]
    for a, b in zip(texts[1], texts[8], strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(texts[1], texts[3], strict=True):
        np.testing.assert_array_equal(a, b)


def test_emissions_in_input_order_with_failures(group_model):
    from w2v2cli.errors import AudioError

    t = Transcriber(RunOptions(model=ModelOptions(model=str(group_model)), batch_size=4))

    def bad():
        raise AudioError("x.wav", "not audio")

    loaders = [lambda: noise_audio(3.0, 1), bad, lambda: noise_audio(0.5, 2),
               lambda: np.zeros(0, np.float32)]
    got = list(t.emissions(loaders))
    assert [i for i, _ in got] == [0, 1, 2, 3]
    assert isinstance(got[1][1], AudioError)
    assert got[0][1].duration == pytest.approx(3.0)
    assert got[2][1].duration == pytest.approx(0.5)
    assert "no audio" in str(got[3][1])


def test_device_defaults_for_batching(group_model):
    """CPU: one chunk at a time, no padding; an explicit batch size is honoured."""
    t = Transcriber(RunOptions(model=ModelOptions(model=str(group_model), device="cpu")))
    assert (t.runner.batch_size, t.runner.max_padding) == (1, 0.0)
    t = Transcriber(RunOptions(model=ModelOptions(model=str(group_model), device="cpu"),
                               batch_size=8, max_padding=0.25))
    assert (t.runner.batch_size, t.runner.max_padding) == (8, 0.25)
