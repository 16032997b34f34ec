"""A dependency-free text progress bar."""

from __future__ import annotations

import sys
import time


class Progress:
    """Prints ``[#####.....] 50% 100/200 loss=0.123`` on one refreshed line.

    Examples:
      >>> import io
      >>> out = io.StringIO()
      >>> bar = Progress(4, width=4, stream=out)
      >>> bar.update(2, loss=0.5)
      >>> seconds = bar.close()
      >>> "2/4" in out.getvalue()
      True
    """

    def __init__(self, total: int, width: int = 30, stream=None, label: str = ""):
        self.total, self.width, self.label = total, width, label
        self.stream = stream or sys.stdout
        self.start = time.perf_counter()

    def update(self, done: int, **metrics: float) -> None:
        filled = int(self.width * done / max(self.total, 1))
        bar = "#" * filled + "." * (self.width - filled)
        shown = " ".join(f"{k}={v:.4f}" for k, v in metrics.items())
        pct = 100 * done // max(self.total, 1)
        self.stream.write(
            f"\r{self.label}[{bar}] {pct:3d}% {done}/{self.total} {shown}"
        )
        self.stream.flush()

    def close(self) -> float:
        """Ends the line; returns the elapsed seconds."""
        self.stream.write("\n")
        self.stream.flush()
        return time.perf_counter() - self.start
