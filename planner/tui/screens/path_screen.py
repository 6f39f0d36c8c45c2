"""Ask for a file path (open, save as, export), with a directory tree to pick from."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import DirectoryTree, Input, Label

from planner.tui.widgets.file_tree import FileTree


class PathScreen(ModalScreen[Path | None]):
    """Dismisses with the chosen path (relative paths resolved against `start`), or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", tooltip="Close without choosing a file")]

    def __init__(self, title: str, start: Path, suggestion: str = "", must_exist: bool = False) -> None:
        super().__init__(classes="dialog-screen")
        self.title_text, self.start, self.suggestion, self.must_exist = title, start, suggestion, must_exist

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog path-dialog"):
            yield Label(self.title_text, classes="dialog-question")
            yield Input(value=self.suggestion, placeholder="path/to/file", id="path-input")
            yield Label("", id="path-error", classes="field-error")
            yield FileTree(self.start, id="path-tree")
            yield Label("enter: choose · escape: cancel · pick a file in the tree to fill the path",
                        classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one("#path-input", Input).focus()

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        field = self.query_one("#path-input", Input)
        field.value = str(event.path)
        field.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if not text:
            return
        path = Path(text).expanduser()
        if not path.is_absolute():
            path = self.start / path
        if self.must_exist and not path.is_file():
            self.query_one("#path-error", Label).update(Content(f"{path}: no such file"))
            return
        if path.is_dir():
            self.query_one("#path-error", Label).update(Content(f"{path}: is a directory"))
            return
        self.dismiss(path)

    def action_cancel(self) -> None:
        self.dismiss(None)
