"""Per-channel pacing of Slack posts: Slack allows about one message per second per channel.

A caller reserves the channel's next free slot under a lock and sleeps outside it, so posts to
one channel are spaced ``interval`` apart while posts to other channels go straight through.
A 429's Retry-After pushes the channel's next slot back for everyone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

MAX_TRACKED = 1000  # channels; slots in the past carry no information and are dropped


class ChannelPacer:
    """Spaces calls per key (a channel id) at least ``interval`` seconds apart; thread-safe."""

    def __init__(
        self,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if interval < 0:
            raise ValueError("the interval cannot be negative")
        self.interval = interval
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}

    def reserve(self, channel: str) -> float:
        """Take the channel's next slot; return how many seconds to wait for it."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next.get(channel, now))
            self._next[channel] = slot + self.interval
            if len(self._next) > MAX_TRACKED:
                self._next = {k: v for k, v in self._next.items() if v > now}
            return slot - now

    def wait(self, channel: str) -> float:
        """Block until the channel's next slot (others are not held up); return the wait."""
        delay = self.reserve(channel)
        if delay > 0:
            self._sleep(delay)
        return delay

    def defer(self, channel: str, seconds: float) -> None:
        """Slack said Retry-After ``seconds``: no post to the channel before then."""
        with self._lock:
            now = self._clock()
            self._next[channel] = max(self._next.get(channel, now), now + max(seconds, 0.0))
