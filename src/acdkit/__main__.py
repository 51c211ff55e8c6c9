"""`python -m acdkit` is the `acdkit` command."""

from acdkit.cli import main

main()
