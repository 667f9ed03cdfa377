"""Keras's progress bar, and the batch boundaries of an epoch over arrays."""
import shutil
import sys
import time

import numpy as np

__all__ = ["Progbar"]


def format_value(value):
    """A metric as Keras 3 prints it: 4 decimals, or scientific below 1e-3."""
    return f"{value:.4f}" if abs(value) > 1e-3 else f"{value:.4e}"


class Progbar:
    """Keras 3's progress display. verbose=1 on a terminal redraws one line per step
    (each redraw blanks what is left of the longer line before it, and a line never
    outgrows the terminal, so a redraw never wraps); verbose=2, or an output that is not a
    terminal, prints one line when finalized."""

    def __init__(self, target, width=20, verbose=1, stream=None):
        self.target, self.width = target, width
        self.stream = stream or sys.stdout
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.live = verbose == 1 and tty
        self.verbose = verbose
        self.start = time.perf_counter()
        self.seen = 0
        self._drawn = 0   # characters of the line on screen now

    @staticmethod
    def _format_time(seconds):
        if seconds >= 1 or seconds == 0:
            return f"{seconds:.0f}s"
        if seconds >= 1e-3:
            return f"{seconds * 1e3:.0f}ms"
        return f"{seconds * 1e6:.0f}us"

    def _line(self, current, logs, finalize):
        elapsed = time.perf_counter() - self.start
        per_step = elapsed / max(current, 1)
        metrics = " - ".join(f"{k}: {format_value(v)}" for k, v in sorted(logs.items())
                             if isinstance(v, (float, int, np.floating)))
        if self.target:
            filled = int(self.width * current / self.target)
            bar = "\u2501" * filled + " " * (self.width - filled)
            # Padded to the total's width, so that the bar does not move at step 10.
            head = f"{current:>{len(str(self.target))}}/{self.target} {bar}"
        else:
            head = f"{current}/Unknown"
        tail = f" - {metrics}" if metrics else ""
        if not self.live:  # one line per epoch, as Keras's verbose=2
            return (f"{current}/{self.target or current} - {elapsed:.0f}s - "
                    f"{self._format_time(per_step)}/step{tail}")
        if finalize:
            timing = f"{elapsed:.0f}s {self._format_time(per_step)}/step"
        else:
            eta = per_step * (self.target - current) if self.target else 0
            timing = f"{self._format_time(eta)} {self._format_time(per_step)}/step"
        return f"{head} {timing}{tail}"

    def update(self, current, logs=None, finalize=False):
        self.seen = current
        if self.verbose == 0:
            return
        logs = logs or {}
        if self.live:
            line = self._line(current, logs, finalize)
            columns = shutil.get_terminal_size((80, 24)).columns
            if len(line) > columns - 1:
                line = line[:columns - 2] + "\u2026"
            blank = " " * max(self._drawn - len(line), 0)   # the longer line's tail
            self._drawn = 0 if finalize else len(line)
            self.stream.write("\r" + line + blank + ("\n" if finalize else ""))
            self.stream.flush()
        elif finalize:
            self.stream.write(self._line(current, logs, True) + "\n")
            self.stream.flush()


def batches(n, batch_size, order=None):
    """(start, stop, indices or None) for each batch; the last partial batch is kept."""
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        yield start, stop, (None if order is None else order[start:stop])
