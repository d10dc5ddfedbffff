"""Tests for bot.business_hours: parsing hours and counting deadlines in open time."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.business_hours import BusinessHours, BusinessHoursError, deadline

BERLIN = ZoneInfo("Europe/Berlin")
JERUSALEM = ZoneInfo("Asia/Jerusalem")
NEW_YORK = ZoneInfo("America/New_York")
OFFICE = BusinessHours.parse("Mon-Fri 09:00-18:00 Europe/Berlin")
# Sunday windows across Berlin's 2025 clock changes: spring forward on 30 March
# (02:00 CET -> 03:00 CEST), fall back on 26 October (03:00 CEST -> 02:00 CET).
NIGHT = BusinessHours.parse("Sun 01:00-04:00 Europe/Berlin")
SPRING_SUNDAY = datetime(2025, 3, 30, tzinfo=BERLIN)
FALL_SUNDAY = datetime(2025, 10, 26, tzinfo=BERLIN)


def berlin(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    *,
    second: int = 0,
    microsecond: int = 0,
    fold: int = 0,
) -> datetime:
    """A Berlin wall-clock time."""
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=BERLIN, fold=fold)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A UTC time."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# --- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "days", "opens", "closes", "zone"),
    [
        ("Mon-Fri 09:00-18:00 Europe/Berlin", {0, 1, 2, 3, 4}, "09:00", "18:00", "Europe/Berlin"),
        ("Mon,Wed,Fri 08:00-12:30 UTC", {0, 2, 4}, "08:00", "12:30", "UTC"),
        ("Mon-Wed,Fri 10:00-11:00 UTC", {0, 1, 2, 4}, "10:00", "11:00", "UTC"),
        ("Sat 00:00-23:59 UTC", {5}, "00:00", "23:59", "UTC"),
        ("Sun-Thu 08:30-17:00 Asia/Jerusalem", {6, 0, 1, 2, 3}, "08:30", "17:00", "Asia/Jerusalem"),
        ("Fri-Mon 10:00-16:00 UTC", {4, 5, 6, 0}, "10:00", "16:00", "UTC"),
        ("Mon-Sun 09:00-17:00 UTC", set(range(7)), "09:00", "17:00", "UTC"),
        ("Tue-Tue 09:00-17:00 UTC", {1}, "09:00", "17:00", "UTC"),
        (
            "  mon - FRI   9:00 - 18:00   europe/berlin ",
            {0, 1, 2, 3, 4},
            "09:00",
            "18:00",
            "Europe/Berlin",
        ),
        ("Monday, Wednesday 09:00-18:00 utc", {0, 2}, "09:00", "18:00", "UTC"),
        ("SAT,sun 11:00-15:00 America/New_York", {5, 6}, "11:00", "15:00", "America/New_York"),
    ],
)
def test_parse(spec: str, days: set[int], opens: str, closes: str, zone: str) -> None:
    hours = BusinessHours.parse(spec)
    assert hours.days == frozenset(days)
    assert hours.opens == time.fromisoformat(opens)
    assert hours.closes == time.fromisoformat(closes)
    assert hours.zone.key == zone


@pytest.mark.parametrize(
    ("spec", "canonical"),
    [
        ("mon-fri 09:00-18:00 europe/berlin", "Mon-Fri 09:00-18:00 Europe/Berlin"),
        ("Fri,Wed,Mon 9:05-9:10 UTC", "Mon,Wed,Fri 09:05-09:10 UTC"),
        ("Mon-Wed,Fri 10:00-11:00 UTC", "Mon-Wed,Fri 10:00-11:00 UTC"),
        ("Sun-Thu 08:30-17:00 Asia/Jerusalem", "Sun-Thu 08:30-17:00 Asia/Jerusalem"),
        ("Fri-Mon 10:00-16:00 UTC", "Fri-Mon 10:00-16:00 UTC"),
        ("Sat-Sun 10:00-16:00 UTC", "Sat,Sun 10:00-16:00 UTC"),
        ("Sun,Mon,Wed-Fri 10:00-16:00 UTC", "Sun,Mon,Wed-Fri 10:00-16:00 UTC"),
        ("Sun-Sat 10:00-16:00 UTC", "Mon-Sun 10:00-16:00 UTC"),
    ],
)
def test_describe_is_canonical_and_round_trips(spec: str, canonical: str) -> None:
    hours = BusinessHours.parse(spec)
    assert hours.describe() == canonical
    assert BusinessHours.parse(hours.describe()) == hours


@pytest.mark.parametrize(
    ("spec", "mentions"),
    [
        ("", "empty"),
        ("   \t ", "empty"),
        ("Mox-Fri 09:00-18:00 UTC", "Unknown day 'Mox'"),
        ("Mon-Fry 09:00-18:00 UTC", "Unknown day 'Fry'"),
        ("Mon,,Fri 09:00-18:00 UTC", "day name is missing"),
        ("Mon-Wed-Fri 09:00-18:00 UTC", "Unknown day 'Wed-Fri'"),
        ("09:00-18:00 Europe/Berlin", "Unknown day '09:00'"),
        ("Mon-Fri 9-18 UTC", "Bad time '9'"),
        ("Mon-Fri 24:00-25:00 UTC", "Bad time '24:00'"),
        ("Mon-Fri 09:60-10:00 UTC", "Bad time '09:60'"),
        ("Mon-Fri 09:00 UTC", "Bad opening hours '09:00'"),
        ("Mon-Fri 09:00-12:00-18:00 UTC", "Bad opening hours"),
        ("Mon-Fri 22:00-06:00 UTC", "overnight"),
        ("Mon-Fri 09:00-09:00 UTC", "must be later than opening time 09:00"),
        ("Mon-Fri 09:00-18:00 Mars/Olympus", "Unknown time zone 'Mars/Olympus'"),
        ("Mon-Fri 09:00-18:00 Europe", "Unknown time zone 'Europe'"),
        ("Mon-Fri 09:00-18:00 ../../etc/passwd", "Unknown time zone"),
        ("Mon-Fri 09:00-18:00 Europe/Berlin please", "Unexpected words 'please'"),
        ("Mon-Fri", "missing opening hours"),
        ("Mon-Fri 09:00-18:00", "missing a time zone"),
    ],
)
def test_parse_errors_name_the_problem_and_show_an_example(spec: str, mentions: str) -> None:
    with pytest.raises(BusinessHoursError) as caught:
        BusinessHours.parse(spec)
    message = str(caught.value)
    assert mentions in message
    assert "e.g." in message or "like 'Mon-Fri 09:00-18:00 Europe/Berlin'" in message
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("days", "opens", "closes"),
    [
        (frozenset(), time(9), time(18)),
        (frozenset({7}), time(9), time(18)),
        (frozenset({0}), time(9, 0, 30), time(18)),
        (frozenset({0}), time(9, tzinfo=UTC), time(18)),
        (frozenset({0}), time(18), time(9)),
    ],
)
def test_constructor_rejects_hours_parse_could_not_produce(
    days: frozenset[int], opens: time, closes: time
) -> None:
    with pytest.raises(BusinessHoursError):
        BusinessHours(days=days, opens=opens, closes=closes, zone=BERLIN)


# --- is_open and next_open -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "is_open"),
    [
        (berlin(2025, 6, 2, 9, 0), True),  # opening instant is open
        (berlin(2025, 6, 2, 8, 59, second=59, microsecond=999999), False),
        (berlin(2025, 6, 2, 17, 59, second=59, microsecond=999999), True),
        (berlin(2025, 6, 2, 18, 0), False),  # closing instant is closed
        (berlin(2025, 6, 7, 12, 0), False),  # Saturday
        (utc(2025, 6, 2, 7, 0), True),  # 09:00 CEST, given in another zone
        (utc(2025, 6, 2, 6, 59), False),
        (datetime(2025, 6, 2, 3, 0, tzinfo=NEW_YORK), True),  # 09:00 in Berlin
    ],
)
def test_is_open_at_the_edges(at: datetime, is_open: bool) -> None:
    assert OFFICE.is_open(at) is is_open


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2025, 6, 2, 12, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        OFFICE.is_open(naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        OFFICE.next_open(naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        OFFICE.add_open_time(naive, timedelta(hours=1))
    with pytest.raises(ValueError, match="timezone-aware"):
        OFFICE.open_time_between(berlin(2025, 6, 2), naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        deadline(naive, timedelta(hours=1), None)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (berlin(2025, 6, 2, 12, 0), berlin(2025, 6, 2, 12, 0)),
        (berlin(2025, 6, 2, 9, 0), berlin(2025, 6, 2, 9, 0)),
        (berlin(2025, 6, 2, 7, 0), berlin(2025, 6, 2, 9, 0)),
        (berlin(2025, 6, 6, 18, 0), berlin(2025, 6, 9, 9, 0)),  # Friday close -> Monday
        (berlin(2025, 6, 7, 12, 0), berlin(2025, 6, 9, 9, 0)),
    ],
)
def test_next_open(at: datetime, expected: datetime) -> None:
    result = OFFICE.next_open(at)
    assert result == expected
    assert result.tzinfo is UTC


# --- add_open_time ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        # Friday 17:30 + 1h: half an hour on Friday, half an hour on Monday.
        (berlin(2025, 6, 6, 17, 30), timedelta(hours=1), berlin(2025, 6, 9, 9, 30)),
        # Starting over the weekend counts from Monday's opening.
        (berlin(2025, 6, 7, 10, 0), timedelta(hours=1), berlin(2025, 6, 9, 10, 0)),
        (berlin(2025, 6, 2, 7, 0), timedelta(minutes=30), berlin(2025, 6, 2, 9, 30)),
        (berlin(2025, 6, 2, 20, 0), timedelta(hours=1), berlin(2025, 6, 3, 10, 0)),
        (berlin(2025, 6, 2, 12, 0), timedelta(0), berlin(2025, 6, 2, 12, 0)),
        (berlin(2025, 6, 2, 20, 0), timedelta(0), berlin(2025, 6, 3, 9, 0)),
        (berlin(2025, 6, 6, 18, 0), timedelta(0), berlin(2025, 6, 9, 9, 0)),
        # Using up the open time exactly ends at the closing instant, not the next opening.
        (berlin(2025, 6, 6, 17, 0), timedelta(hours=1), berlin(2025, 6, 6, 18, 0)),
        # 20 open hours from Monday 09:00 = two 9-hour days and 2 hours.
        (berlin(2025, 6, 2, 9, 0), timedelta(hours=20), berlin(2025, 6, 4, 11, 0)),
        (berlin(2025, 6, 2, 9, 0), timedelta(hours=45), berlin(2025, 6, 6, 18, 0)),
        (
            berlin(2025, 6, 2, 9, 0),
            timedelta(hours=45, seconds=1),
            berlin(2025, 6, 9, 9, 0, second=1),
        ),
        (
            berlin(2025, 6, 2, 12, 0, microsecond=250),
            timedelta(microseconds=1),
            berlin(2025, 6, 2, 12, 0, microsecond=251),
        ),
        # The nudge, escalation and second escalation of a question asked Friday 17:50.
        (berlin(2025, 6, 6, 17, 50), timedelta(minutes=15), berlin(2025, 6, 9, 9, 5)),
        (berlin(2025, 6, 6, 17, 50), timedelta(minutes=60), berlin(2025, 6, 9, 9, 50)),
        (berlin(2025, 6, 6, 17, 50), timedelta(hours=2), berlin(2025, 6, 9, 10, 50)),
    ],
)
def test_add_open_time(start: datetime, duration: timedelta, expected: datetime) -> None:
    result = OFFICE.add_open_time(start, duration)
    assert result == expected
    assert result.tzinfo is UTC
    assert OFFICE.open_time_between(start, result) == duration


def test_negative_durations_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        OFFICE.add_open_time(berlin(2025, 6, 2, 12, 0), timedelta(minutes=-1))
    with pytest.raises(ValueError, match="negative"):
        deadline(berlin(2025, 6, 2, 12, 0), timedelta(minutes=-1), None)


def test_calendar_walks_are_bounded() -> None:
    start = berlin(2025, 6, 2, 12, 0)
    with pytest.raises(ValueError, match="years ahead"):
        OFFICE.add_open_time(start, timedelta(days=10_000))
    with pytest.raises(ValueError, match="years ahead"):
        OFFICE.open_time_between(start, start + timedelta(days=365 * 50))


# --- daylight saving time ----------------------------------------------------------------------


def test_normal_hours_across_spring_forward_week() -> None:
    # Friday 28 March is CET (UTC+1), Monday 31 March is CEST (UTC+2).
    friday = berlin(2025, 3, 28, 17, 30)
    assert OFFICE.add_open_time(friday, timedelta(hours=1)) == berlin(2025, 3, 31, 9, 30)
    assert OFFICE.add_open_time(friday, timedelta(hours=1)) == utc(2025, 3, 31, 7, 30)
    week = OFFICE.open_time_between(berlin(2025, 3, 24, 9), berlin(2025, 3, 31, 9))
    assert week == timedelta(hours=45)


def test_normal_hours_across_fall_back_week() -> None:
    friday = berlin(2025, 10, 24, 17, 30)
    assert OFFICE.add_open_time(friday, timedelta(hours=1)) == berlin(2025, 10, 27, 9, 30)
    assert OFFICE.add_open_time(friday, timedelta(hours=1)) == utc(2025, 10, 27, 8, 30)
    week = OFFICE.open_time_between(berlin(2025, 10, 20, 9), berlin(2025, 10, 27, 9))
    assert week == timedelta(hours=45)


def test_window_spanning_spring_forward_is_two_real_hours() -> None:
    # 01:00 CET is 00:00 UTC; 04:00 CEST is 02:00 UTC; 02:00-03:00 never happens.
    assert NIGHT.next_open(SPRING_SUNDAY) == utc(2025, 3, 30, 0, 0)
    assert NIGHT.open_time_between(SPRING_SUNDAY, SPRING_SUNDAY + timedelta(days=1)) == (
        timedelta(hours=2)
    )
    start = berlin(2025, 3, 30, 1, 0)
    assert NIGHT.add_open_time(start, timedelta(minutes=90)) == berlin(2025, 3, 30, 3, 30)
    assert NIGHT.add_open_time(start, timedelta(hours=2)) == berlin(2025, 3, 30, 4, 0)
    # The third hour comes from the next Sunday, already in summer time.
    assert NIGHT.add_open_time(start, timedelta(hours=3)) == berlin(2025, 4, 6, 2, 0)
    assert NIGHT.is_open(utc(2025, 3, 30, 1, 59))
    assert not NIGHT.is_open(utc(2025, 3, 30, 2, 0))


def test_window_spanning_fall_back_is_four_real_hours() -> None:
    # 01:00 CEST is 23:00 UTC on Saturday; 04:00 CET is 03:00 UTC; 02:00-03:00 happens twice.
    assert NIGHT.next_open(FALL_SUNDAY) == utc(2025, 10, 25, 23, 0)
    assert NIGHT.open_time_between(FALL_SUNDAY, FALL_SUNDAY + timedelta(days=1)) == (
        timedelta(hours=4)
    )
    start = berlin(2025, 10, 26, 1, 0)
    # The second 02:00 (CET). Compared in UTC: Python never finds a fold=1 time equal to an
    # instant in another zone.
    second_two = berlin(2025, 10, 26, 2, 0, fold=1).astimezone(UTC)
    assert NIGHT.add_open_time(start, timedelta(hours=2)) == second_two == utc(2025, 10, 26, 1, 0)
    assert NIGHT.add_open_time(start, timedelta(hours=4)) == berlin(2025, 10, 26, 4, 0)
    assert NIGHT.is_open(berlin(2025, 10, 26, 2, 30, fold=0))
    assert NIGHT.is_open(berlin(2025, 10, 26, 2, 30, fold=1))
    # A start during the repeated hour counts from its real instant, not its wall time.
    second_half_past_two = berlin(2025, 10, 26, 2, 30, fold=1)
    assert NIGHT.add_open_time(second_half_past_two, timedelta(hours=1)) == utc(2025, 10, 26, 2, 30)


@pytest.mark.parametrize(
    ("spec", "day", "opens", "closes"),
    [
        # Opening in the gap: the clock jumps past 02:30, so the window opens at the jump.
        (
            "Sun 02:30-05:00 Europe/Berlin",
            SPRING_SUNDAY,
            utc(2025, 3, 30, 1, 0),
            utc(2025, 3, 30, 3, 0),
        ),
        # Closing in the gap: closed from the jump on.
        (
            "Sun 01:00-02:30 Europe/Berlin",
            SPRING_SUNDAY,
            utc(2025, 3, 30, 0, 0),
            utc(2025, 3, 30, 1, 0),
        ),
        # Opening in the repeated hour: the first 02:30 opens it.
        (
            "Sun 02:30-05:00 Europe/Berlin",
            FALL_SUNDAY,
            utc(2025, 10, 26, 0, 30),
            utc(2025, 10, 26, 4, 0),
        ),
        # Closing in the repeated hour: the first 02:30 closes it.
        (
            "Sun 00:00-02:30 Europe/Berlin",
            FALL_SUNDAY,
            utc(2025, 10, 25, 22, 0),
            utc(2025, 10, 26, 0, 30),
        ),
        # New York springs forward at 02:00 local on 9 March 2025.
        (
            "Sun 01:00-04:00 America/New_York",
            datetime(2025, 3, 9, tzinfo=NEW_YORK),
            utc(2025, 3, 9, 6, 0),
            utc(2025, 3, 9, 8, 0),
        ),
    ],
)
def test_window_edges_on_dst_days(
    spec: str, day: datetime, opens: datetime, closes: datetime
) -> None:
    hours = BusinessHours.parse(spec)
    assert hours.next_open(day) == opens
    assert hours.add_open_time(day, closes - opens) == closes
    assert hours.open_time_between(day, day + timedelta(days=1)) == closes - opens
    assert not hours.is_open(opens - timedelta(microseconds=1))
    assert hours.is_open(closes - timedelta(microseconds=1))
    assert not hours.is_open(closes)


def test_window_entirely_inside_the_gap_has_no_open_time_that_day() -> None:
    hours = BusinessHours.parse("Sun 02:00-02:59 Europe/Berlin")
    assert hours.open_time_between(SPRING_SUNDAY, SPRING_SUNDAY + timedelta(days=1)) == timedelta(0)
    assert hours.next_open(SPRING_SUNDAY) == berlin(2025, 4, 6, 2, 0)


def test_a_day_skipped_by_the_calendar_has_no_open_time() -> None:
    # Samoa skipped Friday 30 December 2011 when it moved across the date line.
    apia = ZoneInfo("Pacific/Apia")
    hours = BusinessHours.parse("Mon-Sun 09:00-10:00 Pacific/Apia")
    thursday = datetime(2011, 12, 29, 9, 30, tzinfo=apia)
    assert hours.add_open_time(thursday, timedelta(hours=1)) == (
        datetime(2011, 12, 31, 9, 30, tzinfo=apia)
    )


# --- wrap-around days ----------------------------------------------------------------------


def test_sunday_to_thursday_week() -> None:
    hours = BusinessHours.parse("Sun-Thu 08:30-17:00 Asia/Jerusalem")
    thursday = datetime(2025, 6, 5, 16, 30, tzinfo=JERUSALEM)
    sunday = datetime(2025, 6, 8, 9, 0, tzinfo=JERUSALEM)
    assert hours.add_open_time(thursday, timedelta(hours=1)) == sunday
    assert not hours.is_open(datetime(2025, 6, 6, 12, 0, tzinfo=JERUSALEM))  # Friday
    assert hours.is_open(datetime(2025, 6, 8, 12, 0, tzinfo=JERUSALEM))  # Sunday


def test_friday_to_monday_week() -> None:
    hours = BusinessHours.parse("Fri-Mon 10:00-16:00 UTC")
    assert [hours.is_open(utc(2025, 6, day, 12)) for day in range(2, 9)] == [
        True,  # Mon
        False,  # Tue
        False,  # Wed
        False,  # Thu
        True,  # Fri
        True,  # Sat
        True,  # Sun
    ]
    assert hours.add_open_time(utc(2025, 6, 2, 15), timedelta(hours=2)) == utc(2025, 6, 6, 11)


# --- open_time_between -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (berlin(2025, 6, 2, 9), berlin(2025, 6, 9, 9), timedelta(hours=45)),
        (berlin(2025, 6, 2, 12), berlin(2025, 6, 2, 12), timedelta(0)),
        (berlin(2025, 6, 2, 13), berlin(2025, 6, 2, 12), timedelta(0)),
        (berlin(2025, 6, 6, 17, 30), berlin(2025, 6, 9, 9, 30), timedelta(hours=1)),
        (berlin(2025, 6, 7, 0), berlin(2025, 6, 8, 23, 59), timedelta(0)),
        (berlin(2025, 6, 2, 7), berlin(2025, 6, 2, 20), timedelta(hours=9)),
        (utc(2025, 6, 2, 7), berlin(2025, 6, 2, 10), timedelta(hours=1)),
    ],
)
def test_open_time_between(start: datetime, end: datetime, expected: timedelta) -> None:
    assert OFFICE.open_time_between(start, end) == expected


# --- deadline ------------------------------------------------------------------------------


def test_deadline_without_hours_is_plain_elapsed_time() -> None:
    # Real elapsed time: across the spring-forward night 2 hours end at 03:00 CEST.
    start = berlin(2025, 3, 30, 0, 0)
    result = deadline(start, timedelta(hours=2), None)
    assert result == berlin(2025, 3, 30, 3, 0)
    assert result.tzinfo is UTC


def test_deadline_with_hours_counts_open_time() -> None:
    start = berlin(2025, 6, 6, 17, 50)
    assert deadline(start, timedelta(hours=1), OFFICE) == berlin(2025, 6, 9, 9, 50)


# --- properties ----------------------------------------------------------------------------

# Zones with unusual clocks: half-hour DST, midnight transitions, negative DST, a skipped day.
ZONES = (
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Jerusalem",
    "Australia/Lord_Howe",
    "America/Sao_Paulo",
    "America/Havana",
    "Europe/Dublin",
    "Pacific/Apia",
    "America/St_Johns",
)
# Instants near clock changes in those zones, so that random starts meet them often.
CLOCK_CHANGES = (
    utc(2025, 3, 30, 1),
    utc(2025, 10, 26, 1),
    utc(2025, 3, 9, 7),
    utc(2025, 11, 2, 6),
    utc(2024, 4, 6, 15),
    utc(2018, 11, 4, 3),
    utc(2011, 12, 30, 10),
)

# Two clock readings this far apart bracket any single clock change in between.
AROUND = timedelta(hours=26)


@st.composite
def business_hours(draw: st.DrawFn) -> BusinessHours:
    """Any valid hours in one of the awkward zones."""
    opens = draw(st.integers(min_value=0, max_value=23 * 60 + 58))
    closes = draw(st.integers(min_value=opens + 1, max_value=23 * 60 + 59))
    return BusinessHours(
        days=draw(st.frozensets(st.integers(min_value=0, max_value=6), min_size=1)),
        opens=time(*divmod(opens, 60)),
        closes=time(*divmod(closes, 60)),
        zone=ZoneInfo(draw(st.sampled_from(ZONES))),
    )


starts = st.one_of(
    st.datetimes(
        min_value=datetime(2010, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    ),
    st.builds(
        lambda change, shift: change + shift,
        st.sampled_from(CLOCK_CHANGES),
        st.timedeltas(min_value=timedelta(days=-10), max_value=timedelta(days=10)),
    ),
)


def open_time(hours: BusinessHours, fraction: float) -> timedelta:
    """Up to 200 open hours, but never more than about a year's worth of these hours."""
    weekly = len(hours.days) * (
        datetime.combine(datetime.min, hours.closes) - datetime.combine(datetime.min, hours.opens)
    )
    limit = min(timedelta(hours=200), weekly * 50)
    return timedelta(seconds=round(limit.total_seconds() * fraction))


fractions = st.floats(min_value=0, max_value=1)
PROPERTY = settings(max_examples=60, deadline=None)


@PROPERTY
@given(business_hours(), starts, fractions)
def test_open_time_between_inverts_add_open_time(
    hours: BusinessHours, start: datetime, fraction: float
) -> None:
    duration = open_time(hours, fraction)
    end = hours.add_open_time(start, duration)
    assert hours.open_time_between(start, end) == duration
    assert end >= start
    assert end.tzinfo is UTC


@PROPERTY
@given(business_hours(), starts, fractions)
def test_deadline_lands_inside_a_window_or_at_its_closing_edge(
    hours: BusinessHours, start: datetime, fraction: float
) -> None:
    duration = open_time(hours, fraction)
    end = hours.add_open_time(start, duration)
    if duration:
        # Open just before the result: it is inside a window or at its closing instant.
        assert hours.is_open(end - timedelta(microseconds=1))
    else:
        assert end == hours.next_open(start)
        assert hours.is_open(end)


@PROPERTY
@given(business_hours(), starts, fractions, fractions)
def test_add_open_time_is_strictly_monotonic_and_additive(
    hours: BusinessHours, start: datetime, first: float, second: float
) -> None:
    shorter, longer = sorted((open_time(hours, first), open_time(hours, second)))
    early = hours.add_open_time(start, shorter)
    late = hours.add_open_time(start, longer)
    assert early < late if shorter < longer else early == late
    if longer > shorter:
        # Counting on from an intermediate deadline reaches the same final deadline.
        assert hours.add_open_time(early, longer - shorter) == late


@PROPERTY
@given(business_hours(), starts, st.timedeltas(timedelta(0), timedelta(days=30)), fractions)
def test_open_time_between_is_additive_and_bounded(
    hours: BusinessHours, start: datetime, span: timedelta, split: float
) -> None:
    end = start + span
    middle = start + span * split
    total = hours.open_time_between(start, end)
    assert total == hours.open_time_between(start, middle) + hours.open_time_between(middle, end)
    assert timedelta(0) <= total <= span


@PROPERTY
@given(business_hours(), starts)
def test_is_open_matches_the_wall_clock_away_from_clock_changes(
    hours: BusinessHours, at: datetime
) -> None:
    offsets = {
        (at + shift).astimezone(hours.zone).utcoffset() for shift in (-AROUND, timedelta(0), AROUND)
    }
    local = at.astimezone(hours.zone)
    if len(offsets) == 1:
        expected = local.weekday() in hours.days and hours.opens <= local.time() < hours.closes
        assert hours.is_open(at) is expected
    opening = hours.next_open(at)
    assert opening >= at
    assert hours.is_open(opening)
    assert hours.is_open(at) is (opening == at)
