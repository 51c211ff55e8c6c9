"""Run SIPp peers for lab tests: callers, agents and customers (docs/lab.md).

One SIPp process per role, each on its own loopback address, each in its own
work directory with its message log (``-trace_msg``), error log and stat CSV.

    with agent_peer(noanswer={"agent3"}) as agents:   # background UAS at 127.0.0.3:5070
        result = caller("100", dtmf="1").run()       # blocks; a SippResult
        assert result.ok, result
        assert agents.wait_for_invites(1)[0].user == "agent7"

Every process started here is killed by ``stop()``, at context exit, or at
interpreter exit, whichever comes first.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self, TypedDict, Unpack

from acdkit.labkit.dtmfpcap import dtmf_pcap
from acdkit.labkit.ports import NoFreePort, allocate_udp, udp_bound
from acdkit.labkit.siplog import (
    Invite,
    SipMessage,
    SippResult,
    invites_of,
    parse_message_log,
    stat_counts,
)

__all__ = [
    "SCENARIOS", "Behaviour", "Invite", "Peer", "SipMessage", "SippError", "SippProcess",
    "SippResult", "agent_peer", "caller", "customer_peer", "free_udp_port", "invites_of",
    "parse_message_log", "peer", "sipp_binary",
]

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
ASTERISK = "127.0.0.1:5060"
CALLER_IP = "127.0.0.2"
AGENT_IP, AGENT_PORT = "127.0.0.3", 5070
CUSTOMER_IP, CUSTOMER_PORT = "127.0.0.4", 5080
SILENCE = "w"  # the "no DTMF" pcap: SIPp loads play_pcap_audio files at start, so one is needed

_LIVE: set[subprocess.Popen[bytes]] = set()


class SippError(RuntimeError):
    """SIPp is missing, or a SIPp process could not start."""


# ---- processes -----------------------------------------------------------------------------


def sipp_binary() -> str:
    """The sipp executable, or SippError saying how to get it."""
    found = shutil.which("sipp")
    if not found:
        raise SippError("sipp not found on PATH: install it (Debian: apt-get install sip-tester, "
                        "or `make deps`)")
    return found


def free_udp_port(ip: str, *, span: int = 1) -> int:
    """A port P on ``ip`` with P..P+span-1 free for UDP, handed to no other caller in any
    process until the lab range has gone round (ports.allocate_udp)."""
    try:
        return allocate_udp(ip, span=span)
    except NoFreePort as e:
        raise SippError(str(e)) from e


@dataclass
class SippProcess:
    """One SIPp process: build it, ``start()`` it, then ``wait()`` for it or ``stop()`` it."""

    scenario: Path
    local_ip: str
    local_port: int | None = None  # None: a free one
    remote: str | None = ASTERISK  # None for a peer that only answers
    service: str | None = None
    calls: int | None = None  # -m
    rate: float | None = None  # calls per second
    limit: int | None = None  # -l, simultaneous calls
    timeout: float | None = None  # SIPp's own -timeout (seconds); it then fails
    keys: Mapping[str, str] = field(default_factory=dict)
    variables: Mapping[str, str] = field(default_factory=dict)
    extra_args: tuple[str, ...] = ()
    workdir: Path | None = None  # None: a fresh one under $TMPDIR/acdkit-sipp/
    name: str = "sipp"
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _killed: bool = field(default=False, init=False, repr=False)
    _auto_port: bool = field(default=True, init=False, repr=False)

    def command(self) -> list[str]:
        """The sipp command line (ports resolved)."""
        assert self.workdir and self.local_port
        w = self.workdir
        args = [sipp_binary(), *([self.remote] if self.remote else []),
                "-sf", str(self.scenario), "-i", self.local_ip, "-p", str(self.local_port),
                "-mi", self.local_ip, "-mp", str(free_udp_port(self.local_ip, span=4)),
                "-bind_local", "-nostdin", "-aa",
                "-trace_msg", "-message_file", str(w / "messages.log"),
                "-trace_err", "-error_file", str(w / "errors.log"),
                "-trace_stat", "-stf", str(w / "stats.csv"), "-fd", "1"]
        args += _opt("-s", self.service) + _opt("-m", self.calls) + _opt("-l", self.limit)
        if self.rate is not None:
            args += ["-r", f"{self.rate:g}", "-rp", "1000"]
        if self.timeout is not None:  # SIPp 3.6.1 counts it in whole seconds
            args += ["-timeout", f"{math.ceil(self.timeout)}s", "-timeout_error"]
        for key, value in self.keys.items():
            args += ["-key", key, str(value)]
        for var, value in self.variables.items():
            args += ["-set", var, str(value)]
        return [*args, *self.extra_args]

    def __post_init__(self) -> None:
        self._auto_port = self.local_port is None

    def start(self, *, ready_timeout: float = 5.0, attempts: int = 3) -> Self:
        """Start SIPp; return once it holds its SIP port (SippError if it exits first).
        A process already running is left as it is (``with peer: peer.start()`` is fine).

        A fixed SIP port still held by an exiting process is waited for; a SIPp that could
        not bind a port anyway ("errno = 98") is started again, on new ports where they are
        chosen here, up to ``attempts`` times."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.workdir = Path(self.workdir or _new_workdir(self.name))
        self.workdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, attempts + 1):
            if self._auto_port:
                self.local_port = free_udp_port(self.local_ip)
            else:
                self._wait_port_free(ready_timeout)
            self._spawn()
            try:
                self._wait_ready(ready_timeout)
                return self
            except SippError as e:
                if attempt == attempts or "errno = 98" not in str(e):
                    raise
        return self

    def _spawn(self) -> None:
        assert self.workdir
        command = self.command()
        (self.workdir / "command.txt").write_text(" ".join(command) + "\n")
        with (self.workdir / "stdout.log").open("wb") as out, \
                (self.workdir / "stderr.log").open("wb") as err:
            self.proc = subprocess.Popen(command, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err, start_new_session=True)
        _LIVE.add(self.proc)

    def _wait_port_free(self, timeout: float) -> None:
        """Until no process holds this peer's fixed SIP port (one ending may, for a moment)."""
        assert self.local_port
        deadline = time.monotonic() + timeout
        while udp_bound(self.local_ip, self.local_port):
            if time.monotonic() > deadline:
                raise SippError(f"{self.name}: {self.local_ip}:{self.local_port} is held by "
                                f"another process (see `ss -ulpn`)")
            time.sleep(0.05)

    def _wait_ready(self, timeout: float) -> None:
        """Until SIPp holds its SIP port; a process that already ran (a quick call) is fine."""
        assert self.proc and self.local_port
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if udp_bound(self.local_ip, self.local_port):
                return
            time.sleep(0.02)
        if self.proc.poll() is not None and self.messages():
            return
        self._kill()
        raise SippError(f"{self.name} did not start (rc={self.proc.returncode}):\n"
                        f"{self._errors()}\ncommand: {self.workdir}/command.txt")

    def run(self, grace: float = 5.0) -> SippResult:
        """Start SIPp and wait for it: its own ``timeout`` plus ``grace`` (or 60 s)."""
        self.start()
        return self.wait((self.timeout or 55.0) + grace)

    def wait(self, timeout: float = 60.0) -> SippResult:
        """Wait for SIPp to exit; past ``timeout`` seconds kill it (``timed_out``)."""
        if not self.proc:
            raise SippError(f"{self.name} was never started")
        try:
            self.proc.wait(timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            self._kill()
            timed_out = True
        return self.result(timed_out=timed_out)

    def stop(self) -> SippResult:
        """Kill SIPp (if still running) and return what it did."""
        if self.proc and self.proc.poll() is None:
            self._kill()
        return self.result()

    def _kill(self) -> None:
        if not self.proc:
            return
        self._killed = self.proc.poll() is None
        _kill_group(self.proc)

    def result(self, *, timed_out: bool = False) -> SippResult:
        assert self.workdir
        returncode = None if self._killed or not self.proc else self.proc.returncode
        successful, failed = stat_counts(self.workdir / "stats.csv")
        return SippResult(returncode, timed_out, successful, failed, self.messages(),
                          self.workdir, self._errors())

    def messages(self) -> list[SipMessage]:
        """Everything logged so far (SIPp flushes its message log as it goes)."""
        log = self.workdir / "messages.log" if self.workdir else None
        return parse_message_log(log.read_text(errors="replace")) if log and log.exists() else []

    def _errors(self) -> str:
        assert self.workdir
        parts = [(self.workdir / name) for name in ("stderr.log", "errors.log")]
        return "\n".join(p.read_text(errors="replace")[-4000:] for p in parts if p.exists())

    def __enter__(self) -> Self:
        return self if self.proc else self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _new_workdir(name: str, keep_hours: float = 24.0) -> Path:
    """A fresh directory under $TMPDIR/acdkit-sipp/ (pruned of ones older than a day)."""
    base = Path(tempfile.gettempdir()) / "acdkit-sipp"
    base.mkdir(exist_ok=True)
    cutoff = time.time() - keep_hours * 3600
    for old in base.iterdir():
        with contextlib.suppress(OSError):
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base))


def _opt(flag: str, value: object | None) -> list[str]:
    return [] if value is None else [flag, str(value)]


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM SIPp's process group, SIGKILL it if it lingers; reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(2.0)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(2.0)
    _LIVE.discard(proc)


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_LIVE):
        if proc.poll() is None:
            _kill_group(proc)


# ---- callers -------------------------------------------------------------------------------


def caller(service: str = "100", *, dtmf: str = "", media: Path | None = None,
           hangup_after: float | None = None, caller_id: str = "4930123456",
           calls: int = 1, rate: float = 10.0,
           limit: int | None = None, local_ip: str = CALLER_IP, remote: str = ASTERISK,
           timeout: float = 60.0, workdir: Path | None = None,
           scenario: Path = SCENARIOS / "caller.xml") -> SippProcess:
    """A caller, not started (``.run()`` it, or ``.start()`` it and ``.wait()``).

    It dials ``service`` from ``caller_id``; after the answer it sends ``dtmf`` (``w`` = 0.5 s
    pause, e.g. ``"1wwww2"``) or plays the pcap ``media`` (audiopcap.speech_pcap); then it
    hangs up after ``hangup_after`` seconds or, with None, waits for the far end's BYE.
    ``calls`` calls start at ``rate`` per second (at most ``limit`` at once). SIPp stops,
    failing any call still up, after ``timeout`` seconds (whole seconds: SIPp 3.6.1 rounds
    down, so this rounds up).
    """
    hold_ms = 0 if hangup_after is None else max(1, round(hangup_after * 1000))
    if media and dtmf:
        raise ValueError("give dtmf or media, not both (audiopcap can put DTMF around speech)")
    keys = {"caller_id": caller_id, "dtmf_pcap": str(media or dtmf_pcap(dtmf or SILENCE))}
    return SippProcess(scenario, local_ip, remote=remote, service=service, calls=calls,
                       rate=rate, limit=limit, timeout=timeout, keys=keys,
                       variables={"hold_ms": str(hold_ms)}, workdir=workdir, name="caller")


# ---- answering peers -----------------------------------------------------------------------


class Peer(SippProcess):
    """A background UAS answering for every user at its address (agents or customers)."""

    def invites(self) -> list[Invite]:
        """The dialog-creating INVITEs received so far, oldest first."""
        return invites_of(self.messages())

    def wait_for_invites(self, count: int, timeout: float = 10.0) -> list[Invite]:
        """Wait until ``count`` INVITEs came in; AssertionError with what did come otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            invites = self.invites()
            if len(invites) >= count:
                return invites
            if self.proc and self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: wanted {count} INVITEs, got {self.invites()}\n"
                             f"{self.result()}")

    def open_calls(self) -> set[str]:
        """Call-IDs of calls received and not yet ended (BYE answered, or INVITE refused)."""
        calls: set[str] = set()
        for m in self.messages():
            if m.method == "INVITE" and not m.sent:
                calls.add(m.call_id)
            elif m.status is not None and ((m.cseq_method == "BYE" and m.status == 200)
                                           or (m.cseq_method == "INVITE" and m.status >= 300)):
                calls.discard(m.call_id)
        return calls

    # Run when a ``with`` block of a peer ends, before it stops: the lab tests hang up every
    # channel left (tests/lab/conftest.hang_up_all) while the peer still answers, so no INVITE
    # of this test (app_queue ringing a member, an originate) is retransmitted for up to 32 s
    # to the next test's peer on the same address.
    before_exit: ClassVar[list[Callable[[], object]]] = []

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for hook in self.before_exit:
            hook()
        self.stop()

    def stop(self, grace: float = 2.0) -> SippResult:
        """Let calls still up end for ``grace`` seconds (so Asterisk's BYE is answered, not
        retransmitted to the next peer on this port), then kill SIPp."""
        deadline = time.monotonic() + grace
        while self.proc and self.proc.poll() is None and self.open_calls() \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        return super().stop()


class Behaviour(TypedDict, total=False):
    """What a peer's users do. A user list holds Request-URI users (``agent3``, ``4930111``) or
    is ``"*"`` for everyone; users in no list answer after ``ring_after`` seconds and wait for
    Asterisk's BYE."""

    busy: Iterable[str] | str  # 486 Busy Here
    noanswer: Iterable[str] | str  # ring until Asterisk CANCELs
    hangup: Iterable[str] | str  # answer, hang up after hangup_after seconds
    dtmf_users: Iterable[str] | str  # answer, then send dtmf
    dtmf: str  # digits for dtmf_users ("*" to decline, "w" = 0.5 s pause)
    media: Path  # a pcap (audiopcap) dtmf_users play instead of ``dtmf``, e.g. speech
    ring_after: float
    hangup_after: float
    refuse_msg: Iterable[str] | str  # 405 to an out-of-dialog MESSAGE (others get 200)


def _user_list(users: Iterable[str] | str) -> str:
    """A user list for uas.xml's -set: "*" (everyone) or ",a,b," (or "" for nobody)."""
    if isinstance(users, str):
        return users if users in ("", "*") else f",{users},"
    listed = ",".join(users)
    return f",{listed}," if listed else ""


def peer(ip: str, port: int, *, name: str, scenario: Path = SCENARIOS / "uas.xml",
         workdir: Path | None = None, **behaviour: Unpack[Behaviour]) -> Peer:
    """A peer, not started, answering at ip:port as ``behaviour`` says."""
    b = behaviour
    variables = {"busy": _user_list(b.get("busy", ())),
                 "noanswer": _user_list(b.get("noanswer", ())),
                 "hangup": _user_list(b.get("hangup", ())),
                 "dtmf": _user_list(b.get("dtmf_users", ())),
                 "refuse_msg": _user_list(b.get("refuse_msg", ())),
                 "ring_ms": str(round(b.get("ring_after", 0.0) * 1000)),
                 "talk_ms": str(round(b.get("hangup_after", 1.0) * 1000))}
    keys = {"dtmf_pcap": str(b.get("media") or dtmf_pcap(b.get("dtmf", "") or SILENCE))}
    return Peer(scenario, ip, local_port=port, remote=None, workdir=workdir, name=name,
                keys=keys, variables=variables)


def agent_peer(workdir: Path | None = None, **behaviour: Unpack[Behaviour]) -> Peer:
    """The agents' phones: agent1..agent200 at 127.0.0.3:5070, not started."""
    return peer(AGENT_IP, AGENT_PORT, name="agents", scenario=SCENARIOS / "agent_uas.xml",
                workdir=workdir, **behaviour)


def customer_peer(workdir: Path | None = None, **behaviour: Unpack[Behaviour]) -> Peer:
    """Outside numbers (customers) at 127.0.0.4:5080, not started."""
    return peer(CUSTOMER_IP, CUSTOMER_PORT, name="customers",
                scenario=SCENARIOS / "customer_uas.xml", workdir=workdir, **behaviour)
