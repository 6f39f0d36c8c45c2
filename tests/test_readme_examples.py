"""The README's example outputs are the commands' outputs: a block that drifts from what the
command prints now fails here (the `--emit vllm` example had kept an LMCache size two model
changes old)."""

from __future__ import annotations

from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def _block_after(command: str) -> list[str]:
    """The lines of the fenced block that starts with `$ COMMAND`."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"$ {command}\n") + len(command) + 3
    return text[start:text.index("```", start)].rstrip("\n").splitlines()


@pytest.mark.parametrize("emit", ["vllm"])
def test_the_emit_example_is_what_the_command_prints(invoke, emit):
    command = f"planner solve scenarios/agentic-coding.toml --emit {emit}"
    result = invoke(*command.split()[1:])
    assert result.exit_code == 0, result.output
    assert result.stdout.rstrip("\n").splitlines() == _block_after(command)


def test_the_owned_fleet_example_is_what_the_command_prints(invoke):
    """Its lines (those it shows; `...` stands for lines left out) are in the output, whatever the
    width the output wraps at."""
    command = "planner solve scenarios/agentic-coding.toml --set cost.mode=own --top 3"
    result = invoke(*command.split()[1:])
    assert result.exit_code == 0, result.output
    printed = " ".join(result.output.split())
    for line in _block_after(command):
        for part in filter(None, (p.strip() for p in line.split("..."))):
            assert " ".join(part.split()) in printed, f"README shows {part!r}; the command prints something else"
