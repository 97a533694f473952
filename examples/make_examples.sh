#!/usr/bin/env bash
# Synthesise the three example clips in examples/audio/ with espeak-ng.
#
# espeak-ng writes 22050 Hz 16-bit mono WAV. One clip stays WAV; one becomes FLAC
# (soundfile) and one MP3 (PyAV's bundled LAME), because there is no ffmpeg CLI to rely
# on. Together they exercise both decoders of w2v2cli.audio and the 22.05 -> 16 kHz
# resampling. Also writes references.tsv (usable as an `eval` manifest) and README.md.
#
# Usage: examples/make_examples.sh        (needs espeak-ng and the package's dependencies)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/audio"
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

command -v espeak-ng >/dev/null || { echo "espeak-ng is not installed" >&2; exit 1; }

# name|sentence  (plain lower-case words: what a LibriSpeech-style model should output)
clips=(
  "fox|the quick brown fox jumps over the lazy dog"
  "journey|a journey of a thousand miles begins with a single step"
  "stella|please call stella and ask her to bring these things with her from the store"
)

for clip in "${clips[@]}"; do
  name="${clip%%|*}"
  text="${clip#*|}"
  # -v en-us: a US voice; -s 150: a little slower than the default 175 words a minute.
  espeak-ng -v en-us -s 150 -w "$tmp/$name.wav" "$text"
done

python - "$tmp" "$out" <<'PY'
import sys
from pathlib import Path

import av
import numpy as np
import soundfile as sf

tmp, out = Path(sys.argv[1]), Path(sys.argv[2])

# 1. fox.wav: espeak-ng's output as is (22050 Hz, 16-bit PCM).
x, rate = sf.read(tmp / "fox.wav", dtype="int16")
sf.write(out / "fox.wav", x, rate, subtype="PCM_16")

# 2. journey.flac: lossless, same rate.
x, rate = sf.read(tmp / "journey.wav", dtype="int16")
sf.write(out / "journey.flac", x, rate, subtype="PCM_16")

# 3. stella.mp3: 32 kbit/s mono MP3 through PyAV (plenty for synthetic speech).
x, rate = sf.read(tmp / "stella.wav", dtype="float32")
with av.open(str(out / "stella.mp3"), "w") as container:
    stream = container.add_stream("libmp3lame", rate=rate)
    stream.layout = "mono"
    stream.bit_rate = 32000
    size = stream.codec_context.frame_size or 1152
    for start in range(0, len(x), size):
        block = np.ascontiguousarray(x[None, start : start + size])
        frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
PY

{
  printf 'path\ttext\n'
  printf 'fox.wav\tthe quick brown fox jumps over the lazy dog\n'
  printf 'journey.flac\ta journey of a thousand miles begins with a single step\n'
  printf 'stella.mp3\tplease call stella and ask her to bring these things with her from the store\n'
} > "$out/references.tsv"

cat > "$out/README.md" <<'MD'
# Example clips

Synthetic English speech made by `examples/make_examples.sh` with espeak-ng
(voice `en-us`, 150 words a minute, 22050 Hz mono). Regenerate with that script.

| file | format | sentence |
| --- | --- | --- |
| `fox.wav` | WAV, 16-bit PCM | the quick brown fox jumps over the lazy dog |
| `journey.flac` | FLAC | a journey of a thousand miles begins with a single step |
| `stella.mp3` | MP3, 32 kbit/s | please call stella and ask her to bring these things with her from the store |

Transcribe them (results go to /tmp/out, mirroring this folder):

    w2v2 transcribe examples/audio -o /tmp/out

`references.tsv` holds the same sentences as an evaluation manifest (columns `path`
and `text`, paths relative to this folder).

Synthetic speech is not natural speech: expect a few errors from models trained on
read audiobooks, more on the MP3.
MD

ls -l "$out"
