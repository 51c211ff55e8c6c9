"""Text to speech with espeak-ng: 8 kHz mono 16-bit WAV that Asterisk plays as is.

The text goes to espeak-ng on stdin (never on its command line, so a text that starts with
``-`` is spoken, not taken as an option); its 22.05 kHz output is resampled with soxr.

``Speaker`` is what a listener uses (docs/security.md): the same text in the same voice is
spoken once and then read from a cache on disk (file name: a hash of voice, speed and text),
the same text asked for twice at once runs once, at most ``concurrency`` espeak-ng processes
run at a time, and one that outlives ``timeout`` is killed and reaped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from acdkit.core.errors import ConfigError, InvalidInput, Unavailable
from acdkit.speech import audio

log = logging.getLogger(__name__)

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


async def speak_async(text: str, *, voice: str = "en-us", wpm: int = 150,
                      timeout: float = TIMEOUT) -> bytes:
    """``speak`` without blocking the event loop (no cache, no cap: ``Speaker`` has them)."""
    return await asyncio.to_thread(_phone, await _espeak(_clean(text), voice, wpm, timeout))


async def _espeak(text: bytes, voice: str, wpm: int, timeout: float) -> bytes:
    """espeak-ng's WAV for ``text``; the process is killed and reaped when it outlives
    ``timeout`` (``Unavailable``) or when the caller is cancelled."""
    proc = await asyncio.create_subprocess_exec(
        *_command(voice, wpm), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(text), timeout)
    except TimeoutError:
        raise Unavailable(f"espeak-ng took over {timeout:g} s; killed") from None
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise InvalidInput(f"espeak-ng failed: {err.decode(errors='replace')[:200]}")
    return out


class Speaker:
    """Text to speech with a cache on disk and a cap on espeak-ng processes at once."""

    def __init__(self, cache_dir: Path, *, concurrency: int = 2, timeout: float = TIMEOUT,
                 max_files: int = 2_000, wpm: int = 150) -> None:
        self.cache_dir = cache_dir
        self.timeout = timeout
        self.max_files = max_files
        self.wpm = wpm
        self.runs = 0  # espeak-ng processes started
        self._slots = asyncio.Semaphore(concurrency)
        self._running: dict[str, asyncio.Task[bytes]] = {}

    def path(self, text: str, voice: str) -> Path:
        """Where ``text`` spoken in ``voice`` is kept."""
        key = hashlib.sha256(b"\0".join([voice.encode(), str(self.wpm).encode(),
                                          _clean(text)])).hexdigest()
        return self.cache_dir / f"{key}.wav"

    async def speak(self, text: str, voice: str = "en-us") -> bytes:
        """``text`` spoken as an 8 kHz WAV, from the cache when it was spoken before."""
        path = self.path(text, voice)
        with contextlib.suppress(FileNotFoundError):
            return await asyncio.to_thread(path.read_bytes)
        task = self._running.get(path.name)
        if task is None:
            task = asyncio.create_task(self._render(_clean(text), voice, path))
            self._running[path.name] = task
            task.add_done_callback(lambda _: self._running.pop(path.name, None))
        return await asyncio.shield(task)  # a caller that goes away leaves it to the others

    async def _render(self, text: bytes, voice: str, path: Path) -> bytes:
        async with self._slots:
            self.runs += 1
            raw = await _espeak(text, voice, self.wpm, self.timeout)
        wav = await asyncio.to_thread(_phone, raw)
        try:
            await asyncio.to_thread(self._keep, path, wav)
        except OSError as err:  # speech still works without its cache
            log.warning("TTS cache %s: %s", self.cache_dir, err)
        return wav

    def _keep(self, path: Path, wav: bytes) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        fd, tmp = tempfile.mkstemp(dir=self.cache_dir, suffix=".part")
        with os.fdopen(fd, "wb") as out:
            out.write(wav)
        os.replace(tmp, path)
        files = sorted(self.cache_dir.glob("*.wav"), key=lambda p: p.stat().st_mtime)
        for old in files[:max(0, len(files) - self.max_files)]:
            old.unlink(missing_ok=True)
