#!/usr/bin/env bash
# Speak acdkit's prompts (prompts.tsv) with espeak-ng into SOUNDS_DIR/acdkit/*.wav at 8 kHz,
# 16-bit mono, the format Asterisk plays without transcoding pain.
# Usage: make-prompts.sh prompts.tsv /usr/share/asterisk/sounds/en
set -euo pipefail
tsv="$1"; out="$2/acdkit"
mkdir -p "$out"
while IFS=$'\t' read -r name text; do
  case "$name" in ''|'#'*) continue ;; esac
  espeak-ng -v en-us -s 150 -w "$out/$name.tmp.wav" "$text"
  sox -q "$out/$name.tmp.wav" -r 8000 -c 1 -b 16 "$out/$name.wav"
  rm -f "$out/$name.tmp.wav"
done < "$tsv"
