"""Containers of the lab image that lab tests start for themselves (a second Asterisk node,
a Redis Sentinel group), in the lab's own network."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field

from tests.integration.sentinels import SentinelGroup
from tests.lab.conftest import ROOT

LAB_IMAGE = "localhost/acdkit-lab:latest"


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """podman with the lab's settings (scripts/podman-env.sh)."""
    return subprocess.run(["bash", "-c", f"source '{ROOT}/scripts/podman-env.sh' && "
                           'exec podman "$@"', "-", *args],
                          check=check, capture_output=True, text=True, timeout=120)


def network() -> str:
    """The lab's network: a private lab's namespace (tests/lab/labs.py), else the host's."""
    name = os.environ.get("LAB_ASTERISK", "acdkit-asterisk").removeprefix("acdkit-asterisk")
    return f"ns:/run/netns/acdkit{name}" if name else "host"


@dataclass
class SentinelContainers(SentinelGroup):
    """The Sentinel group of tests/integration/sentinels.py, each redis-server and sentinel a
    container of the lab image in the lab's network (on loopback, ports picked free). Its
    directory is mounted at the same path, so the sentinels rewrite their files in it."""

    containers: dict[int, str] = field(default_factory=dict)  # port -> container name

    def _spawn(self, port: int, args: list[str]) -> None:
        name = f"acdkit-redis-{os.getpid()}-{port}"
        podman("rm", "-f", name, check=False)
        podman("run", "-d", "--name", name, "--network", network(),
               "-v", f"{self.root}:{self.root}:z", "-w", str(self.root), LAB_IMAGE,
               "redis-server", *args)
        self.containers[port] = name

    def kill(self, port: int) -> None:
        """SIGKILL the container's redis-server (it loses what it did not replicate)."""
        name = self.containers.pop(port)
        podman("kill", name)
        podman("rm", "-f", name, check=False)

    def stop(self, port: int) -> None:
        podman("rm", "-f", "-t", "2", self.containers.pop(port), check=False)

    def close(self) -> None:
        for port in list(self.containers):
            self.stop(port)
