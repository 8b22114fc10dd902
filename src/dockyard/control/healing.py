"""When the reconciler may next try to heal an endpoint: capped exponential backoff.

The first replacement after a quiet period starts at once; each further attempt of the same
streak waits ``first`` seconds, then twice that, up to ``cap``, counted from the end of the
previous attempt. A streak ends when the endpoint has been whole for ``cap`` seconds. So a
replacement that keeps failing is retried every ``cap`` seconds for as long as the endpoint
exists, and a container that keeps dying is restarted no faster than that either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Backoff:
    first: float
    cap: float
    attempts: int = 0
    last_attempt: float = -math.inf

    def next_try(self) -> float:
        """The loop time from which another attempt may start."""
        if self.attempts == 0:
            return -math.inf
        return self.last_attempt + min(self.cap, self.first * 2 ** (self.attempts - 1))

    def attempted(self, now: float) -> None:
        """An attempt (to replace an instance) has just ended, well or not."""
        self.attempts += 1
        self.last_attempt = now

    def whole(self, now: float) -> None:
        """The endpoint has every instance it should: a streak that has lasted ``cap`` ends."""
        if self.attempts and now - self.last_attempt >= self.cap:
            self.attempts = 0
