"""Web: /metrics (web/metrics.py)."""
