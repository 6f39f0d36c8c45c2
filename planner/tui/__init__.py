"""The Textual front end: `planner` (no arguments) or `planner tui FILE`.

Import contract: only this package imports Textual, and nothing outside it imports this package
except `planner.cli.tui_cmd` (inside the command body). The modules `document`, `fields`,
`solver` and `export` are plain Python so they can be tested without a terminal.
"""
