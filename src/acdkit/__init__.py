"""acdkit: a contact center on a real Asterisk PBX."""

__version__ = "0.1.0"
