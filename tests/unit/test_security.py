"""Security checks of `acdkit doctor` (acdkit/exposure.py): everything on loopback by default,
a warning for each endpoint reachable from elsewhere without TLS, without a login or with the
lab's default password; the lab's passwords known to the code only by their hash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from acdkit.config import AgiSettings, AmiSettings, Settings, load_settings
from acdkit.doctor import check_addresses
from acdkit.exposure import endpoints, is_lab_secret, is_loopback, judge

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "asterisk"
OWN = "a-long-password-of-its-own-9f3k"


def lab_secrets() -> list[str]:
    """The lab's passwords, read where the lab keeps them (never copied into src/)."""
    found = []
    for name, key in (("ari.conf", "password"), ("manager.conf", "secret")):
        for line in (LAB / "etc" / name).read_text().splitlines():
            left, sep, right = line.partition("=")
            if sep and left.strip() == key:
                found.append(right.split(";")[0].strip())
    lab = load_settings(LAB / "acdkit.toml", env={})
    return [*found, lab.ari.password.reveal(), lab.ami.secret.reveal()]


def settings(tmp_path: Path, **dotted: Any) -> Settings:
    empty = tmp_path / "acdkit.toml"
    empty.write_text("")
    return load_settings(empty, env={}, overrides={k.replace("__", "."): v
                                                   for k, v in dotted.items()})


def test_lab_passwords_are_recognised_by_their_hash() -> None:
    secrets = lab_secrets()
    assert len(secrets) == 4 and all(secrets)
    assert all(is_lab_secret(s) for s in secrets)
    assert not any(is_lab_secret(s) for s in ("", OWN, secrets[0] + " ", secrets[0].upper()))


def test_no_lab_password_is_written_in_the_source() -> None:
    secrets = set(lab_secrets())
    for path in (ROOT / "src").rglob("*"):
        if path.is_file() and path.suffix in {".py", ".lua", ".toml", ".cfg", ".txt"}:
            text = path.read_text(errors="replace")
            assert not [s for s in secrets if s in text], path


def test_defaults_keep_every_endpoint_on_loopback() -> None:
    found = {e.name: e for e in endpoints(Settings())}
    assert set(found) == {"ari", "ami", "agi", "media", "redis"}
    for endpoint in found.values():
        assert is_loopback(endpoint.host), endpoint
        assert judge(endpoint)[0] == "OK"
    assert AgiSettings().host == AmiSettings().host == "127.0.0.1"


def test_the_lab_asterisk_listens_on_loopback_only() -> None:
    for name in ("http.conf", "manager.conf"):
        lines = [line.replace(" ", "") for line in (LAB / "etc" / name).read_text().splitlines()]
        assert "bindaddr=127.0.0.1" in lines, name
    assert "permit=127.0.0.1/255.255.255.255" in \
        (LAB / "etc" / "manager.conf").read_text().replace(" ", "")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "localhost", "LOCALHOST", "::1",
                                  "[::1]"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["", "0.0.0.0", "::", "10.0.0.5", "pbx.example.com",
                                  "127.0.0.1.evil.example", "localhost.evil.example"])
def test_hosts_that_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


LAB_ARI, LAB_AMI = lab_secrets()[:2]  # ari.conf's, then manager.conf's


@pytest.mark.parametrize(("dotted", "check", "status", "words"), [
    ({"ari.url": "https://pbx.example.com:8089", "ari.password": OWN}, "ari address", "OK",
     ["TLS and a password of its own"]),
    ({"ari.url": "http://10.0.0.5:8088", "ari.password": OWN}, "ari address", "WARN",
     ["10.0.0.5 is not loopback", "no TLS"]),
    ({"ari.url": "https://10.0.0.5:8089", "ari.password": LAB_ARI}, "ari address", "WARN",
     ["lab's default password"]),
    ({"ari.url": "http://127.0.0.1:8088", "ari.password": LAB_ARI}, "ari address", "WARN",
     ["loopback", "lab default password in use"]),
    ({"ami.host": "127.0.0.1", "ami.secret": LAB_AMI}, "ami address", "WARN",
     ["loopback", "lab default password in use"]),
    ({"ami.host": "localhost", "ami.secret": OWN}, "ami address", "OK", ["loopback"]),
    ({"ami.host": "10.0.0.5", "ami.secret": OWN}, "ami address", "WARN", ["no TLS"]),
    ({"ami.host": "10.0.0.5", "ami.secret": LAB_AMI}, "ami address", "WARN",
     ["lab's default password", "no TLS"]),
    ({"ami.host": "10.0.0.5", "ami.secret": ""}, "ami address", "WARN", ["no authentication"]),
    ({"agi.host": "0.0.0.0"}, "agi address", "WARN",
     ["every interface", "no authentication", "no TLS"]),
    ({"agi.host": "192.168.1.2"}, "agi address", "WARN", ["no authentication"]),
    ({"requests.media_listen": ":8090"}, "media address", "WARN", ["every interface"]),
    ({"redis.url": "redis://10.0.0.9:6379/0"}, "redis address", "WARN",
     ["no authentication", "no TLS"]),
    ({"redis.url": f"rediss://:{OWN}@10.0.0.9:6380/0"}, "redis address", "OK", ["TLS"]),
    ({"redis.url": "unix:///run/redis/redis.sock"}, "redis address", "OK", ["unix socket"]),
])
def test_doctor_warns_about_each_exposed_endpoint(
    tmp_path: Path, dotted: dict[str, str], check: str, status: str, words: list[str]
) -> None:
    rows = {c.check: c for c in check_addresses(settings(tmp_path, **dotted))}
    assert rows[check].status == status, rows[check]
    for word in words:
        assert word in rows[check].detail, rows[check]
    shown = " ".join(c.detail for c in rows.values())
    assert OWN not in shown and LAB_ARI not in shown and LAB_AMI not in shown


def test_doctor_warns_about_credentials_in_the_ari_url(tmp_path: Path) -> None:
    rows = check_addresses(settings(tmp_path, **{"ari.url": f"http://acdkit:{OWN}@127.0.0.1:8088"}))
    found = [c for c in rows if c.check == "credentials"]
    assert len(found) == 1 and found[0].status == "WARN" and "ari.password" in found[0].detail
    assert all(OWN not in c.detail for c in rows)
    assert not [c for c in check_addresses(Settings()) if c.check == "credentials"]


def test_secret_values_never_print() -> None:
    lab = load_settings(LAB / "acdkit.toml", env={})
    for text in (repr(lab), str(lab), repr(lab.ari), f"{lab.ami}", repr(lab.ami.secret)):
        assert LAB_ARI not in text and LAB_AMI not in text
    assert lab.ari.password.reveal() == LAB_ARI  # the value itself is intact
