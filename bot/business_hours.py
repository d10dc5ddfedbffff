"""Business hours: which instants count as open time, and deadlines measured in open time."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

EXAMPLE = "Mon-Fri 09:00-18:00 Europe/Berlin"

DAY_LABELS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_INDEX = {
    **{label.lower(): index for index, label in enumerate(DAY_LABELS)},
    **{name: index for index, name in enumerate(_FULL_DAY_NAMES)},
}
_ALL_DAYS = frozenset(range(7))

# People write "Mon - Fri" and "Mon, Wed"; gluing separators to their neighbours lets a
# plain whitespace split find the three parts. Zone names never contain spaces.
_SPACE_AROUND_SEPARATOR = re.compile(r"\s*([-,])\s*")
_CLOCK_TIME = re.compile(r"(\d{1,2}):(\d{2})")

# Every walk over the calendar stops after this many days, so no input can loop for long.
HORIZON_YEARS = 5
_HORIZON_DAYS = 366 * HORIZON_YEARS
_ONE_SECOND = timedelta(seconds=1)


class BusinessHoursError(ValueError):
    """Business hours that cannot be understood; the message says what to fix."""


@dataclass(frozen=True)
class BusinessHours:
    """Weekly opening hours in one time zone, e.g. Mon-Fri 09:00-18:00 Europe/Berlin."""

    days: frozenset[int]
    opens: time
    closes: time
    zone: ZoneInfo

    def __post_init__(self) -> None:
        """Reject hours that parse() could never have produced."""
        if not self.days or not self.days <= _ALL_DAYS:
            raise BusinessHoursError(
                f"Business days must be a non-empty set of 0 (Mon) to 6 (Sun), e.g. "
                f"frozenset(range(5)) for Mon-Fri; got {sorted(self.days)}."
            )
        for edge in (self.opens, self.closes):
            if edge.tzinfo is not None or edge.second or edge.microsecond:
                raise BusinessHoursError(
                    f"Opening and closing times must be whole local minutes without a time "
                    f"zone, e.g. time(9, 0); got {edge!r}."
                )
        if self.closes <= self.opens:
            raise BusinessHoursError(
                f"Closing time {self.closes:%H:%M} must be later than opening time "
                f"{self.opens:%H:%M} on the same day (overnight hours are not supported), "
                f"e.g. '09:00-18:00'."
            )

    @classmethod
    def parse(cls, spec: str) -> BusinessHours:
        """Read hours written like 'Mon-Fri 09:00-18:00 Europe/Berlin'."""
        parts = _SPACE_AROUND_SEPARATOR.sub(r"\1", spec.strip()).split()
        if not parts:
            raise BusinessHoursError(f"Business hours are empty; write them like {EXAMPLE!r}.")
        days = _parse_days(parts[0])
        opens, closes = _parse_hours(_part(parts, 1, "opening hours such as '09:00-18:00'"))
        zone = _parse_zone(_part(parts, 2, "a time zone such as 'Europe/Berlin'"))
        if len(parts) > 3:
            raise BusinessHoursError(
                f"Unexpected words {' '.join(parts[3:])!r} after the time zone; "
                f"write business hours like {EXAMPLE!r}."
            )
        return cls(days=days, opens=opens, closes=closes, zone=zone)

    def describe(self) -> str:
        """The canonical spec, which parse() turns back into these hours."""
        return f"{_describe_days(self.days)} {self.opens:%H:%M}-{self.closes:%H:%M} {self.zone.key}"

    def is_open(self, at: datetime) -> bool:
        """Whether `at` lies inside an open window (opening instant in, closing instant out)."""
        return self.next_open(at) == _to_utc(at, "at")

    def next_open(self, at: datetime) -> datetime:
        """`at` itself (in UTC) if open, else the next instant the business opens."""
        span = next(self._open_spans(_to_utc(at, "at")), None)
        if span is None:
            raise _beyond_horizon()
        return span[0]

    def add_open_time(self, start: datetime, duration: timedelta) -> datetime:
        """The earliest instant (UTC) by which `duration` of open time has passed since `start`."""
        remaining = _check_duration(duration)
        for opens_at, closes_at in self._open_spans(_to_utc(start, "start")):
            # `<=` ends a deadline exactly at a closing instant rather than at the next opening:
            # the open time is used up then, and open_time_between() agrees.
            if remaining <= closes_at - opens_at:
                return opens_at + remaining
            remaining -= closes_at - opens_at
        raise _beyond_horizon()

    def open_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Open time inside [start, end); zero when end is not after start."""
        finish = _to_utc(end, "end")
        total = timedelta(0)
        for opens_at, closes_at in self._open_spans(_to_utc(start, "start")):
            if opens_at >= finish:
                return total
            total += min(closes_at, finish) - opens_at
        raise _beyond_horizon()

    def _open_spans(self, begin: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Open windows (UTC) in time order, clipped so that none starts before `begin`."""
        # Earlier days can be skipped: a window ends at the first instant the clock reads its
        # closing time, which is no later than the first instant it reads a later date.
        for opens_at, closes_at in self._windows(begin.astimezone(self.zone).date()):
            if closes_at > begin:
                yield max(opens_at, begin), closes_at

    def _windows(self, first_day: date) -> Iterator[tuple[datetime, datetime]]:
        """Each open day's window as UTC instants, for at most the horizon's worth of days."""
        for offset in range(_HORIZON_DAYS):
            day = first_day + timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            opens_at = _first_instant_reading(datetime.combine(day, self.opens), self.zone)
            closes_at = _first_instant_reading(datetime.combine(day, self.closes), self.zone)
            # A day whose whole window was skipped by the clocks (or the day itself, as
            # Samoa did in 2011) yields an empty window and has no open time.
            if opens_at < closes_at:
                yield opens_at, closes_at


def deadline(start: datetime, duration: timedelta, hours: BusinessHours | None) -> datetime:
    """When `duration` has passed since `start` (UTC): real time, or open time if `hours`."""
    if hours is not None:
        return hours.add_open_time(start, duration)
    return _to_utc(start, "start") + _check_duration(duration)


def _first_instant_reading(wall: datetime, zone: ZoneInfo) -> datetime:
    """The first UTC instant at which the local clock reads `wall` or later."""
    # Window edges use this one rule so that DST days stay consistent:
    # - in a fall-back overlap a wall time happens twice; the first occurrence (fold=0) counts,
    #   so `Sun 01:00-04:00` in Berlin on the fall-back Sunday lasts four real hours;
    # - in a spring-forward gap a wall time never happens; the edge is the instant the clock
    #   jumps past it, so `Sun 02:30-05:00` in Berlin opens at 03:00 CEST that day.
    # The rule is monotonic in `wall`, so windows never invert and never overlap.
    earliest = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if _wall_clock(earliest, zone) == wall:
        return earliest
    # In a gap, fold=1 applies the later offset and lands before the jump, fold=0 after it.
    before_jump = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return _clock_jump(before_jump, earliest, wall, zone)


def _clock_jump(low: datetime, high: datetime, wall: datetime, zone: ZoneInfo) -> datetime:
    """Bisect (low, high] to the first whole second whose local reading is `wall` or later."""
    # Transitions happen on whole seconds, and both bounds are whole seconds, so this is exact.
    below, above = 0, round((high - low) / _ONE_SECOND)
    while above - below > 1:
        middle = (below + above) // 2
        if _wall_clock(low + middle * _ONE_SECOND, zone) >= wall:
            above = middle
        else:
            below = middle
    return low + above * _ONE_SECOND


def _wall_clock(instant: datetime, zone: ZoneInfo) -> datetime:
    """What a local clock in `zone` shows at `instant`, as a naive datetime."""
    return instant.astimezone(zone).replace(tzinfo=None)


def _to_utc(at: datetime, name: str) -> datetime:
    """`at` as aware UTC; naive datetimes are refused because their zone is a guess."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(
            f"{name} must be a timezone-aware datetime, e.g. "
            f"datetime(2025, 3, 28, 17, 30, tzinfo=UTC); got naive {at.isoformat()}."
        )
    return at.astimezone(UTC)


def _check_duration(duration: timedelta) -> timedelta:
    """`duration` unchanged, or an error if it is negative."""
    if duration < timedelta(0):
        raise ValueError(f"duration must not be negative, e.g. timedelta(hours=1); got {duration}.")
    return duration


def _beyond_horizon() -> ValueError:
    """The error for a calculation that would walk the calendar past the horizon."""
    return ValueError(
        f"Business hours are only followed {HORIZON_YEARS} years ahead and this calculation "
        f"needs to look further; use a shorter duration or time span."
    )


def _part(parts: list[str], index: int, what: str) -> str:
    """The spec's part at `index`, or an error saying that `what` is missing."""
    if index < len(parts):
        return parts[index]
    raise BusinessHoursError(
        f"Business hours {' '.join(parts)!r} are missing {what}; write them like {EXAMPLE!r}."
    )


def _parse_days(text: str) -> frozenset[int]:
    """Days written as 'Mon-Fri', 'Mon,Wed,Fri', 'Mon-Wed,Fri', 'Sat' or 'Fri-Mon'."""
    days: set[int] = set()
    for item in text.split(","):
        first, dash, last = item.partition("-")
        start = _parse_day(first, text)
        stop = _parse_day(last, text) if dash else start
        # Ranges may wrap past Sunday: Fri-Mon is Fri, Sat, Sun, Mon.
        days.update((start + step) % 7 for step in range((stop - start) % 7 + 1))
    return frozenset(days)


def _parse_day(name: str, days_text: str) -> int:
    """The weekday number (0 = Mon) of a day name such as 'mon' or 'Monday'."""
    index = _DAY_INDEX.get(name.lower())
    if index is None:
        problem = f"Unknown day {name!r}" if name else "A day name is missing"
        raise BusinessHoursError(
            f"{problem} in {days_text!r}; use Mon, Tue, Wed, Thu, Fri, Sat or Sun, "
            f"e.g. 'Mon-Fri' or 'Mon,Wed,Fri'."
        )
    return index


def _parse_hours(text: str) -> tuple[time, time]:
    """Opening and closing times written as 'HH:MM-HH:MM'."""
    edges = text.split("-")
    if len(edges) != 2:
        raise BusinessHoursError(
            f"Bad opening hours {text!r}; write them as HH:MM-HH:MM, e.g. '09:00-18:00'."
        )
    return _parse_time(edges[0], text), _parse_time(edges[1], text)


def _parse_time(text: str, hours_text: str) -> time:
    """A 24-hour 'HH:MM' clock time."""
    match = _CLOCK_TIME.fullmatch(text)
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise BusinessHoursError(
            f"Bad time {text!r} in {hours_text!r}; use 24-hour HH:MM times, e.g. '09:00-18:00'."
        )
    return time(int(match[1]), int(match[2]))


def _parse_zone(name: str) -> ZoneInfo:
    """The IANA time zone called `name`, matched case-insensitively."""
    # The exact spelling is the common case and avoids scanning the zone database.
    with suppress(ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(name)
    key = _zone_keys().get(name.lower())
    if key is None:
        raise BusinessHoursError(
            f"Unknown time zone {name!r}; use an IANA name, e.g. 'Europe/Berlin' or "
            f"'America/New_York'."
        )
    return ZoneInfo(key)


@cache
def _zone_keys() -> dict[str, str]:
    """Every known zone key by its lower-case spelling."""
    # Scanning the zone database takes tens of milliseconds, hence the cache.
    return {key.lower(): key for key in available_timezones()}


def _describe_days(days: frozenset[int]) -> str:
    """Days as runs such as 'Mon-Fri', 'Sun-Thu' or 'Mon,Wed,Fri'."""
    if days == _ALL_DAYS:
        return "Mon-Sun"
    # Starting just after the last closed day keeps wrap-around runs whole (Sun-Thu).
    first = (max(_ALL_DAYS - days) + 1) % 7
    runs: list[list[int]] = []
    for day in ((first + step) % 7 for step in range(7)):
        if day not in days:
            continue
        if runs and (runs[-1][-1] + 1) % 7 == day:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ",".join(_describe_run(run) for run in runs)


def _describe_run(run: list[int]) -> str:
    """One run of consecutive days: 'Mon-Fri' for three or more, else a list."""
    if len(run) >= 3:
        return f"{DAY_LABELS[run[0]]}-{DAY_LABELS[run[-1]]}"
    return ",".join(DAY_LABELS[day] for day in run)
