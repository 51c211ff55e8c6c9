"""Which lab a test session uses. One session at a time uses a lab (one ARI app, one set of
SIPp addresses): a session with lab tests holds an exclusive lock on its lab from the end of
collection to its exit, and a second one waits. Scripts outside pytest take the same lock:
``flock /tmp/acdkit-lab.lock CMD``.

Where private labs exist (scripts/lab-ns.sh), the session takes the first free one among the
main lab and those and moves into its network namespace before any fixture listens or
connects, so several sessions run side by side (developers; CI has the main lab only)."""

from __future__ import annotations

import ctypes
import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]
LAB_LOCK = Path(os.environ.get("ACDKIT_LAB_LOCK", "/tmp/acdkit-lab.lock"))
PRIVATE_LABS = Path("/run/netns")  # scripts/lab-ns.sh: namespaces acdkit-NAME
CLONE_NEWNET = 0x40000000


def claim_lab() -> IO[str]:
    """Lock a lab for this process (and enter it when it is a private one); the lock lasts
    as long as the returned file stays open."""
    labs = [("", LAB_LOCK)]
    if "ACDKIT_LAB_LOCK" not in os.environ:
        names = [ns.name.removeprefix("acdkit-") for ns in sorted(PRIVATE_LABS.glob("acdkit-*"))]
        labs += [(name, Path(f"/tmp/acdkit-lab-{name}.lock")) for name in names]
    if len(labs) == 1:
        lock = LAB_LOCK.open("a")
        fcntl.flock(lock, fcntl.LOCK_EX)
        return lock
    return _first_free(labs)


def _first_free(labs: list[tuple[str, Path]]) -> IO[str]:
    """Lock the first free lab of ``labs`` (name, lock file), waiting for one; enter it when
    it is a private one ("" is the main lab)."""
    while True:
        for name, path in labs:
            lock = path.open("a")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                continue
            if name:
                _enter_private_lab(name)
            return lock
        time.sleep(0.5)


def claim_private_lab(name: str = "") -> IO[str]:
    """Lock the private lab ``name`` (or the first free one, waiting for one) and enter it,
    as ``claim_lab`` does, never the main lab: for bench scripts run beside other sessions.
    Call it before anything listens or connects."""
    names = [name] if name else [ns.name.removeprefix("acdkit-")
                                 for ns in sorted(PRIVATE_LABS.glob("acdkit-*"))]
    if not names or not (PRIVATE_LABS / f"acdkit-{names[0]}").exists():
        raise SystemExit(f"no private lab {name or 'at all'}: scripts/lab-ns.sh up NAME")
    return _first_free([(n, Path(f"/tmp/acdkit-lab-{n}.lock")) for n in names])


def _enter_private_lab(name: str) -> None:
    os.environ.update(LAB_ASTERISK=f"acdkit-asterisk-{name}", LAB_REDIS=f"acdkit-redis-{name}")
    subprocess.run(["bash", "scripts/lab-ns.sh", "refresh", name], cwd=ROOT, check=True)
    libc = ctypes.CDLL(None, use_errno=True)
    with (PRIVATE_LABS / f"acdkit-{name}").open() as ns:
        if libc.setns(ns.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into private lab {name}")
    sys.stderr.write(f"\nlab tests run on private lab {name}\n")
