"""Progress display: tqdm bars on a terminal; plain lines in logs.

Step bars (:func:`step_bar`) show only on a terminal, so a log of a run with stderr
redirected (CI, nohup, a file) holds no carriage-return redraws. Whole pieces of work (the
methods of a ``compare``) go through :class:`Overall`: a bar with an ETA on a terminal, one
line per finished piece, with the elapsed time and an ETA, elsewhere.
"""
from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm


def on_terminal() -> bool:
    return sys.stderr.isatty()


def step_bar(iterable=None, *, enabled: bool, **kwargs):
    """A transient tqdm bar over steps, shown only when ``enabled`` and on a terminal."""
    return tqdm(iterable, disable=not (enabled and on_terminal()), leave=False, **kwargs)


class Overall:
    """Progress over ``total`` named pieces of work (``advance(name)`` after each)."""

    def __init__(self, total: int, desc: str, enabled: bool):
        self.total, self.desc, self.enabled, self.done = total, desc, enabled, 0
        self.start = time.perf_counter()
        self.bar = tqdm(total=total, desc=desc, unit="run", leave=True) if enabled and on_terminal() else None

    def advance(self, name: str) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(name, refresh=False)
            self.bar.update()
        elif self.enabled:
            elapsed = time.perf_counter() - self.start
            eta = elapsed / self.done * (self.total - self.done)
            print(f"{self.desc}: {self.done}/{self.total} done ({name}), {elapsed:.0f} s elapsed, ETA {eta:.0f} s",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
