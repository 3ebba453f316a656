"""One time budget for a whole look-up: every subprocess and HTTP request gets what is left."""

from __future__ import annotations

import time


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        """Seconds left; raises TimeoutError once the budget is spent."""
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"gave up after {self.seconds:g} s")
        return remaining
