"""Supervisor passwords (core/users.py) and what `acdkit doctor` says about the pages'
address (doctor.check_web)."""

from __future__ import annotations

import pytest

from acdkit.config import Settings, WebSettings
from acdkit.core.errors import InvalidInput
from acdkit.core.users import check_name, check_password, hash_password
from acdkit.doctor import check_web

SALT = b"fedcba9876543210"


def test_a_password_hash_is_salted_scrypt_and_checks_only_the_password() -> None:
    hashed = hash_password("correct horse battery", SALT)
    assert hashed.startswith("scrypt$16384$8$1$") and "correct" not in hashed
    assert check_password("correct horse battery", hashed)
    assert not check_password("correct horse batterx", hashed)
    assert hash_password("correct horse battery", b"another salt....") != hashed


@pytest.mark.parametrize("stored", ["", "scrypt$x", "pbkdf2$1$00$00", "scrypt$1$8$1$zz$00"])
def test_a_malformed_hash_never_matches(stored: str) -> None:
    assert not check_password("correct horse battery", stored)


@pytest.mark.parametrize("bad", ["short", "x" * 257])
def test_a_password_has_a_sane_length(bad: str) -> None:
    with pytest.raises(InvalidInput):
        hash_password(bad, SALT)


@pytest.mark.parametrize("name", ["", "a", "Sam", "9lives", "sam smith", "sam\n", "s" * 33])
def test_user_names_are_plain(name: str) -> None:
    with pytest.raises(InvalidInput):
        check_name(name)


@pytest.mark.parametrize(("listen", "tls", "status"), [
    ("127.0.0.1:8080", False, "OK"),
    ("[::1]:8080", False, "OK"),
    ("0.0.0.0:8080", False, "WARN"),
    ("10.1.2.3:8080", False, "WARN"),
    ("10.1.2.3:8443", True, "OK"),
])
def test_doctor_warns_when_the_pages_leave_loopback_without_tls(
        listen: str, tls: bool, status: str) -> None:
    web = WebSettings(listen=listen, tls_cert="c.pem" if tls else "",
                      tls_key="k.pem" if tls else "")
    found = check_web(Settings(web=web))
    assert found.status == status, found
    if status == "WARN":
        assert "without TLS" in found.detail and "web.tls_cert" in found.detail
