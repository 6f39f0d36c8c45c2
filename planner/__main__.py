"""The `planner` console script (and `python -m planner`).

Start-up builds about a million long-lived objects (Typer, pydantic schemas, JAX); the cyclic
garbage collector would scan them over and over while they are created, which cost a third of the
import time of a warm `planner solve`. It stays off until the command starts (`planner.cli`
re-enables it, with what exists by then frozen out of its scans).
"""

from __future__ import annotations

import gc


def main() -> None:
    gc.disable()
    from planner.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
