"""A dependency-free text progress bar."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def _format(value: float | int) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4f}"


class Progress:
    """``label [#####.....]  50% 100/200 loss=0.1230`` for a training run.

    On a terminal the line is redrawn in place; otherwise (a pipe, a file, a
    captured stream) each :meth:`update` that crosses another tenth of the
    run prints one plain line, so logs stay readable. Integer metrics print
    as integers, floats with four decimals.

    Args:
      total: the number of steps.
      width: the bar's width in characters.
      stream: where to write (default ``sys.stderr``).
      label: printed before the bar.
      tty: force (``True``/``False``) or detect (``None``) terminal mode.

    Examples:
      >>> import io
      >>> out = io.StringIO()
      >>> bar = Progress(4, width=4, stream=out, label="run ")
      >>> bar.update(2, loss=0.5, scale=8)
      >>> seconds = bar.close()
      >>> print(out.getvalue().strip())
      run [##..]  50% 2/4 loss=0.5000 scale=8
    """

    def __init__(
        self,
        total: int,
        width: int = 30,
        stream: TextIO | None = None,
        label: str = "",
        tty: bool | None = None,
    ) -> None:
        self.total, self.width, self.label = total, width, label
        self.stream = stream if stream is not None else sys.stderr
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty and isatty())
        self.tty = tty
        self._last_tenth = -1
        self._drawn = False
        self.start = time.perf_counter()

    def _line(self, done: int, metrics: dict[str, Any]) -> str:
        total = max(self.total, 1)
        filled = min(self.width, self.width * done // total)
        bar = "#" * filled + "." * (self.width - filled)
        shown = " ".join(f"{k}={_format(v)}" for k, v in metrics.items())
        pct = min(100, 100 * done // total)
        return f"{self.label}[{bar}] {pct:3d}% {done}/{self.total} {shown}".rstrip()

    def update(self, done: int, **metrics: float | int) -> None:
        """Shows ``done`` steps of ``total`` and the given metrics."""
        line = self._line(done, metrics)
        if self.tty:
            self.stream.write("\r" + line + "\033[K")
            self._drawn = True
        else:
            tenth = 10 * done // max(self.total, 1)
            if tenth == self._last_tenth:
                return
            self._last_tenth = tenth
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> float:
        """Ends the bar's line; returns the seconds since it was created."""
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
        return time.perf_counter() - self.start
