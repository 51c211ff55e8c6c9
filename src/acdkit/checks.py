"""One result of ``acdkit doctor`` (doctor.py checks the parts, doctor_install.py a running
install)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    check: str
    status: str  # OK | WARN | FAIL
    detail: str

    def as_row(self) -> dict[str, str]:
        return {"check": self.check, "status": self.status, "detail": self.detail}
