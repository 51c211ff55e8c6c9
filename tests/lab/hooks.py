"""Priority hooks that lab tests load into `acdkit serve` (``ACDKIT_PRIORITY_HOOK``)."""

from __future__ import annotations

from acdkit.core.tasks import Task


def by_caller(task: Task, points: float) -> float:
    """Ten points per unit of the caller number's last digit: 4930600006 comes before
    4930600001 whatever the order they called in."""
    digits = [c for c in task.number if c.isdigit()]
    return points + 10 * int(digits[-1]) if digits else points
