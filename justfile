# Developer tasks. `just` itself comes with the dev extra (PyPI package rust-just): run `just setup`
# once with a system `just`, or `python3 -m venv .venv && .venv/bin/pip install -e '.[dev]'` and then
# `.venv/bin/just <recipe>`.

set shell := ["bash", "-euo", "pipefail", "-c"]

venv := ".venv"
bin := venv / "bin"
default_scenario := "scenarios/agentic-coding.toml"

# List the recipes
default:
    @{{ just_executable() }} --list

# Create .venv and install planner with the test and lint tools
setup:
    test -x {{ bin }}/python || python3 -m venv {{ venv }}
    {{ bin }}/pip install -e '.[dev]'

# Run the test suite (the README's and CI's command); extra pytest arguments pass through
test *args:
    {{ bin }}/python -m pytest -n 2 -q {{ args }}

# Time the search: configurations per second and the speed-up over the numpy reference
bench *args:
    {{ bin }}/planner bench {{ args }}

# Open the terminal UI on the default scenario
tui *args:
    {{ bin }}/planner {{ args }}

# Solve a scenario (default: the bundled default scenario), e.g. `just solve scenarios/chat.toml --format json`
solve file=default_scenario *args:
    {{ bin }}/planner solve {{ file }} {{ args }}

# Regenerate the syrupy snapshots after an intended change to output or catalogs (review the diff!)
snapshots *args:
    {{ bin }}/python -m pytest -q --snapshot-update {{ args }}

# Lint (ruff)
lint:
    {{ bin }}/ruff check planner tests

# Format and apply safe lint fixes
fmt:
    {{ bin }}/ruff format planner tests
    {{ bin }}/ruff check --fix planner tests
