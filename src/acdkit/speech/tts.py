"""Text to speech with espeak-ng: 8 kHz mono 16-bit WAV that Asterisk plays as is.

The text goes to espeak-ng on stdin (never on its command line, so a text that starts with
``-`` is spoken, not taken as an option); its 22.05 kHz output is resampled with soxr.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess

from acdkit.core.errors import ConfigError, InvalidInput
from acdkit.speech import audio

MAX_CHARS = 2_000  # a reply longer than this is cut: a phone call is no place for an essay
TIMEOUT = 30.0


def _command(voice: str, wpm: int) -> list[str]:
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise ConfigError("requests.tts_voice", "espeak-ng is not installed "
                          "(apt-get install espeak-ng)")
    return [binary, "-v", voice, "-s", str(wpm), "--stdin", "--stdout"]


def _clean(text: str) -> bytes:
    text = " ".join(text.split())[:MAX_CHARS]
    if not text:
        raise InvalidInput("nothing to speak: the text is empty")
    return text.encode("utf-8")


def _phone(raw: bytes) -> bytes:
    samples, rate = audio.decode(raw, "wav")
    return audio.to_wav(audio.resample(samples, rate, audio.PHONE_RATE))


def speak(text: str, *, voice: str = "en-us", wpm: int = 150) -> bytes:
    """``text`` spoken as an 8 kHz WAV. Raises ``InvalidInput`` for an empty text."""
    done = subprocess.run(_command(voice, wpm), input=_clean(text), capture_output=True,
                          timeout=TIMEOUT, check=False)
    if done.returncode != 0:
        raise InvalidInput(f"espeak-ng failed: {done.stderr.decode(errors='replace')[:200]}")
    return _phone(done.stdout)


async def speak_async(text: str, *, voice: str = "en-us", wpm: int = 150) -> bytes:
    """``speak`` without blocking the event loop."""
    proc = await asyncio.create_subprocess_exec(
        *_command(voice, wpm), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(_clean(text)), TIMEOUT)
    if proc.returncode != 0:
        raise InvalidInput(f"espeak-ng failed: {err.decode(errors='replace')[:200]}")
    return await asyncio.to_thread(_phone, out)
