"""Offline speech recognition benchmark: word error rate and seconds per request, per engine.

Ten short service requests are spoken by espeak-ng (en-us, 150 wpm) into 8 kHz mono WAV, as a
telephone line carries them (``acdkit.speech.tts``), and each installed engine
(``acdkit.speech.asr``) transcribes them after the 8 → 16 kHz resampling it does for every
recording. WER = (substitutions + deletions + insertions) / reference words, over all
sentences, on lower-cased words without punctuation. The engine's load time is not counted.

    python tests/bench/bench_asr.py --out var/results/bench-asr.json
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from acdkit.speech import asr, tts

SENTENCES = (
    "my printer is broken please send a technician",
    "i would like to change the date of my delivery",
    "please call me back about my last invoice",
    "the internet connection at my office is down",
    "i want to cancel my subscription today",
    "my order number is four five six seven",
    "can someone explain the charges on my bill",
    "the heating in my apartment does not work",
    "i need a new password for my account",
    "please send me a copy of my contract",
)


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def edits(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def run_engine(name: str, wavs: list[Path]) -> dict[str, Any]:
    started = time.perf_counter()
    engine = asr.transcriber(name)
    load = time.perf_counter() - started
    errors = total = 0
    seconds: list[float] = []
    samples = []
    for sentence, wav in zip(SENTENCES, wavs, strict=True):
        t0 = time.perf_counter()
        text, _ = engine.transcribe(wav)
        seconds.append(time.perf_counter() - t0)
        errors += edits(words(sentence), words(text))
        total += len(words(sentence))
        samples.append(text)
    return {"engine": name, "wer": errors / total, "seconds_per_request":
            sum(seconds) / len(seconds), "load_seconds": load, "first": samples[0]}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    engines = asr.available()
    if not engines:
        print("no speech engine installed: pip install '.[asr]'", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        wavs = []
        for i, sentence in enumerate(SENTENCES):
            wav = Path(tmp) / f"s{i}.wav"
            wav.write_bytes(tts.speak(sentence))
            wavs.append(wav)
        rows = [run_engine(name, wavs) for name in engines]
    print(f"ASR on {len(SENTENCES)} espeak-ng requests at 8 kHz ({platform.processor() or '?'})")
    print(f"{'engine':<14}{'WER':>7}{'s/request':>11}{'load s':>8}  first transcript")
    for r in rows:
        print(f"{r['engine']:<14}{r['wer']:>7.0%}{r['seconds_per_request']:>11.2f}"
              f"{r['load_seconds']:>8.2f}  {r['first']!r}")
    if args.out:
        args.out.write_text(json.dumps({"sentences": len(SENTENCES), "engines": rows},
                                       indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
