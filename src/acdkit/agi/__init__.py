"""acdkit."""
