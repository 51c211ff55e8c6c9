"""A second Asterisk node for lab tests: node "b" beside the lab's node "a" (docs/deployment.md).

It is a container of the lab image in the lab's own network (the main lab's host network, or
a private lab's namespace), with the lab's configuration rewritten to listen on 127.0.0.5
instead of 127.0.0.1: PJSIP 127.0.0.5:5060, ARI 127.0.0.5:8088, AMI 127.0.0.5:5038. The
agents, customers and callers of the numbering plan (docs/lab.md) are the same SIPp peers, so
both nodes reach every agent and every customer. A serve for node b uses ``ENV``."""

from __future__ import annotations

import base64
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.lab.conftest import ROOT, lab_settings
from tests.lab.containers import LAB_IMAGE, network, podman

ADDRESS = "127.0.0.5"
READY_TIMEOUT = 90.0
# serve of node b: its own Asterisk and its own media listener; the same pool.
ENV = {"ACDKIT_NODE_ID": "b", "ACDKIT_ARI_URL": f"http://{ADDRESS}:8088",
       "ACDKIT_AMI_HOST": ADDRESS, "ACDKIT_REQUESTS_MEDIA_LISTEN": f"{ADDRESS}:8090",
       "ACDKIT_REQUESTS_MEDIA_URL": f"http://{ADDRESS}:8090"}
# Where node b listens instead of 127.0.0.1 (the rest of the files are the lab's own).
_LISTENING = {"pjsip.conf": ("bind = 127.0.0.1:5060", "media_address = 127.0.0.1"),
              "http.conf": ("bindaddr = 127.0.0.1",),
              "manager.conf": ("bindaddr = 127.0.0.1",)}


def configuration(into: Path) -> Path:
    """The lab's Asterisk configuration, listening on ``ADDRESS``."""
    shutil.copytree(ROOT / "asterisk" / "etc", into)
    for name, lines in _LISTENING.items():
        path = into / name
        text = path.read_text()
        for line in lines:
            assert line in text, f"{name} no longer has {line!r}: update tests/lab/node_b.py"
            text = text.replace(line, line.replace("127.0.0.1", ADDRESS))
        path.write_text(text)
    return into


class NodeB:
    """Node b's Asterisk: ``start()`` it, ``stop()`` it (and ``start()`` again), ``remove()``."""

    def __init__(self, workdir: Path) -> None:
        self.config = configuration(workdir / "node-b-etc")
        self.name = f"acdkit-asterisk-b-{os.getpid()}"

    def start(self) -> float:
        """Start node b and wait until ARI answers; the seconds it took."""
        started = time.monotonic()
        if podman("container", "exists", self.name, check=False).returncode == 0:
            podman("start", self.name)
        else:
            podman("run", "-d", "--name", self.name, "--network", network(),
                   "-v", f"{self.config}:/etc/asterisk:ro,z",
                   "-v", f"{ROOT / 'dialplan'}:/etc/acdkit/dialplan:ro,z",
                   LAB_IMAGE, "asterisk", "-f", "-n")
        self._wait_ready()
        return time.monotonic() - started

    def stop(self) -> None:
        podman("stop", "-t", "0", self.name)

    def remove(self) -> None:
        podman("rm", "-f", self.name, check=False)

    def _wait_ready(self) -> None:
        ari = lab_settings()["ari"]
        auth = base64.b64encode(f"{ari['username']}:{ari['password']}".encode()).decode()
        request = urllib.request.Request(f"http://{ADDRESS}:8088/ari/asterisk/info",
                                         headers={"Authorization": f"Basic {auth}"})
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    if response.status == 200 and self._booted():
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                logs = podman("logs", "--tail", "30", self.name, check=False).stdout
                raise AssertionError(f"node b not ready in {READY_TIMEOUT:.0f} s:\n{logs}")
            time.sleep(0.5)

    def _booted(self) -> bool:
        return podman("exec", self.name, "asterisk", "-rx", "core waitfullybooted",
                      check=False).returncode == 0
