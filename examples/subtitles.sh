#!/usr/bin/env bash
# A subtitle workflow end to end: video in, subtitles out, muxed into an MKV and burned in.
#
#   bash examples/subtitles.sh [VIDEO] [OUT_DIR]
#
# Without VIDEO it first makes a demo video from examples/audio/fox.wav (a plain background
# with the clip as its sound track). Then:
#   1. w2v2 transcribe VIDEO -f srt --stdout > VIDEO.srt      (progress on stderr, SRT on stdout)
#   2. ffmpeg muxes the SRT into an MKV as a soft subtitle track (switchable in players)
#   3. ffmpeg burns the subtitles into the picture (libass) for players without subtitle support
# Needs w2v2cli and ffmpeg (Debian: apt-get install ffmpeg). MODEL chooses the model
# (default facebook/wav2vec2-base-960h, downloaded on first use); W2V2_ARGS adds options.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${2:-${TMPDIR:-/tmp}/w2v2-subtitles}"
model="${MODEL:-facebook/wav2vec2-base-960h}"
mkdir -p "$out"

video="${1:-}"
if [[ -z "$video" ]]; then
    video="$out/demo.mp4"
    ffmpeg -nostdin -loglevel error -y \
        -f lavfi -i color=c=0x203040:s=640x360:r=25 -i "$here/audio/fox.wav" \
        -shortest -c:v libx264 -pix_fmt yuv420p -c:a aac "$video"
fi
name="$(basename "${video%.*}")"
srt="$out/$name.srt"

# 1. Transcribe straight to an SRT file: only the result goes to stdout.
# shellcheck disable=SC2086
w2v2 transcribe "$video" -m "$model" -f srt --case sentence --stdout ${W2V2_ARGS:-} > "$srt"

# 2. Soft subtitles: copy audio and video, add the SRT as an English subtitle track.
ffmpeg -nostdin -loglevel error -y -i "$video" -i "$srt" \
    -map 0 -map 1 -c copy -c:s srt -metadata:s:s:0 language=eng "$out/$name.subtitled.mkv"

# 3. Hard subtitles: render them into the picture.
ffmpeg -nostdin -loglevel error -y -i "$video" -vf "subtitles=$srt" -c:a copy \
    "$out/$name.burned.mp4"

echo "subtitles:       $srt"
echo "soft subtitles:  $out/$name.subtitled.mkv"
echo "burned in:       $out/$name.burned.mp4"
