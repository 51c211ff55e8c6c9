"""`acdkit doctor` on a running install: roles from command lines, lag and memory verdicts."""

from __future__ import annotations

from acdkit.doctor_install import check_lag, check_memory, check_processes, roles_in


def test_roles_from_command_lines() -> None:
    assert roles_in(["/opt/acdkit/venv/bin/acdkit", "serve"]) == {"serve"}
    assert roles_in(["/usr/bin/python3", "-m", "acdkit", "-v", "worker"]) == {"worker"}
    assert roles_in(["/usr/bin/acdkit", "agents", "list"]) == set()
    assert roles_in(["vim", "acdkit.toml"]) == set()
    # A console script runs as its interpreter and the script path:
    assert roles_in(["/opt/acdkit/venv/bin/python3", "/opt/acdkit/venv/bin/acdkit", "agi"]) == {
        "agi"}


def test_lag_verdicts() -> None:
    assert check_lag(1000.0, None, {"callbacks": 0}).status == "OK"
    assert check_lag(1000.0, 990.0, {"callbacks": 3}).status == "OK"
    late = check_lag(1000.0, 700.0, {"callbacks": 3})
    assert (late.status, "300 s late" in late.detail, "callbacks 3" in late.detail) == (
        "WARN", True, True)
    assert check_lag(1000.0, 0.0, {}).status == "FAIL"


def test_memory_verdicts() -> None:
    assert check_memory({"used_memory": 10 * 2**20, "maxmemory": 0}).status == "WARN"
    assert check_memory({"used_memory": 10 * 2**20, "maxmemory": 100 * 2**20}).status == "OK"
    assert check_memory({"used_memory": 85 * 2**20, "maxmemory": 100 * 2**20}).status == "WARN"
    assert check_memory({"used_memory": 99 * 2**20, "maxmemory": 100 * 2**20}).status == "FAIL"


def test_processes_verdicts() -> None:
    found = {c.check: c.status for c in check_processes({"serve"}, [5.0, 500.0])}
    assert found == {"process worker": "OK", "process serve": "OK", "process agi": "WARN",
                     "process web": "WARN"}
    assert check_processes(set(), [500.0])[0].status == "FAIL"
    assert check_processes(set(), [])[0].status == "FAIL"
