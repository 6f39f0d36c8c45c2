"""One status line: a spinner while solving (compiling the first time), then what the solve found."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import Static

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
SPIN_AFTER_S = 0.4


class SolveStatus(Static):
    """`busy` animates the spinner; `message` is the text after it."""

    busy: reactive[bool] = reactive(False)
    """True while a solve is running."""

    message: reactive[str] = reactive("")
    """What the status line says."""

    error: reactive[bool] = reactive(False)
    """Style the message as an error."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._frame = 0
        self._timer: Timer | None = None

    def watch_busy(self, busy: bool) -> None:
        if busy and self._timer is None:
            # A warm solve takes ~0.15 s: animating it would only redraw the screen while the solve
            # needs the CPU. The spinner starts if the solve is still running after SPIN_AFTER_S.
            self._timer = self.set_timer(SPIN_AFTER_S, self._spin)
        elif not busy and self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._render_line()

    def _spin(self) -> None:
        self._timer = self.set_interval(0.1, self._tick)

    def watch_message(self) -> None:
        self._render_line()

    def watch_error(self) -> None:
        self._render_line()

    def _tick(self) -> None:
        self._frame = (self._frame + 1) % len(SPINNER)
        self._render_line()

    def _render_line(self) -> None:
        head = f"{SPINNER[self._frame]} " if self.busy else ""  # a still spinner until it animates
        # one line high by CSS, so new text never changes the layout: skip the (whole-screen)
        # layout pass, which at 180x50 costs ~13 ms on every spinner frame and every message
        self.update(Text(head + self.message, style="bold red" if self.error else ""), layout=False)
        self.set_class(self.busy, "-busy")
