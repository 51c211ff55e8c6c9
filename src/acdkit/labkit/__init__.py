"""The lab's tooling: SIPp peers and callers (``sipp``), their logs read back (``siplog``),
RFC 4733 DTMF pcaps (``dtmfpcap``) and UDP ports that no two peers share (``ports``).

``make demo``, the lab tests and the benchmarks all drive the lab with it. It stands outside
acdkit's layers (docs/architecture.md): it imports no other acdkit module and none imports
it, so a production install never runs it. It needs ``sipp`` on PATH (docs/lab.md).
"""
