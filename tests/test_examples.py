"""The examples run end to end with real tools (espeak-ng clips, ffmpeg, PyAV)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import av
import pytest
import srt

ROOT = Path(__file__).parent.parent


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is installed by install.sh")
def test_subtitle_workflow(group_model, tmp_path):
    env = dict(os.environ, MODEL=str(group_model), W2V2_ARGS="--max-cue-duration 2")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    subprocess.run(
        ["bash", str(ROOT / "examples" / "subtitles.sh"), "", str(tmp_path)],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    cues = list(srt.parse((tmp_path / "demo.srt").read_text()))
    assert cues and all(c.start < c.end for c in cues)
    with av.open(str(tmp_path / "demo.subtitled.mkv")) as mkv:
        subs = mkv.streams.subtitles
        assert len(subs) == 1 and subs[0].language == "eng"
        assert sum(1 for _ in mkv.demux(subs[0]) if _.size) == len(cues)
    with av.open(str(tmp_path / "demo.burned.mp4")) as mp4:
        assert mp4.streams.video and not mp4.streams.subtitles


def test_example_clips_are_listed_in_references():
    refs = (ROOT / "examples" / "audio" / "references.tsv").read_text().splitlines()
    listed = {line.split("\t")[0] for line in refs[1:]}
    present = {p.name for p in (ROOT / "examples" / "audio").iterdir() if p.suffix != ".md"}
    assert listed == present - {"references.tsv"}
