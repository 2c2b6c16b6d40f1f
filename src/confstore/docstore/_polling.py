"""Adaptive polling of a document store's change feed: fast after a change, slower when quiet.

A document store (Vespa, Elasticsearch) cannot tell a follower of a commit, so
``DocumentConfigStore.wait_for_changes`` polls. ``AdaptivePoll`` paces it: right after a change
is seen (by a poll, or written through this handle) the next check comes ``min_interval`` later,
and every quiet check doubles the pause, up to ``max_interval``. A burst of changes is followed
closely; a quiet store costs one request per ``max_interval`` (or per the follower's own
timeout, when that is shorter: a wait never outlasts it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from .._errors import InvalidConfigError
from .._options import StoreOptions

DEFAULT_POLL_MIN: Final = 0.05
DEFAULT_POLL_MAX: Final = 1.0


@dataclass(frozen=True, slots=True)
class PollBounds:
    """The pause between two checks of the feed: ``min_interval`` after a change, growing
    (doubling) while quiet up to ``max_interval``; both in seconds, 0 < min <= max."""

    min_interval: float = DEFAULT_POLL_MIN
    max_interval: float = DEFAULT_POLL_MAX

    def __post_init__(self) -> None:
        for name, value in (("poll_min", self.min_interval), ("poll_max", self.max_interval)):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 < value < math.inf
            ):
                raise InvalidConfigError(
                    f"{name} must be a positive number of seconds, got {value!r}", field=name
                )
        if self.min_interval > self.max_interval:
            raise InvalidConfigError(
                f"poll_min ({self.min_interval:g}) must not exceed poll_max "
                f"({self.max_interval:g})",
                field="poll_min",
            )

    @classmethod
    def from_options(cls, reader: StoreOptions) -> PollBounds:
        """The ``poll_min`` and ``poll_max`` URL options (seconds)."""
        return cls(
            reader.take_float("poll_min", DEFAULT_POLL_MIN),
            reader.take_float("poll_max", DEFAULT_POLL_MAX),
        )


class AdaptivePoll:
    """The current pause of one store handle's feed checks (see the module docstring)."""

    __slots__ = ("bounds", "pause")

    def __init__(self, bounds: PollBounds) -> None:
        self.bounds = bounds
        self.pause = bounds.max_interval  # nothing seen yet: as if quiet

    def changed(self) -> None:
        """A change was seen or written: check again soon."""
        self.pause = self.bounds.min_interval

    def quiet(self) -> None:
        """A check found nothing: wait longer before the next one."""
        self.pause = min(self.pause * 2, self.bounds.max_interval)
