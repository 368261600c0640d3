"""What a sensor can have produced: values and timestamps outside these bounds are refused,
never stored."""

import math
import numbers
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.utils import timezone

# Plausible bounds per field: (low, high, unit). Wider than the plant ever
# runs, narrower than what a disconnected or shorted probe reports.
LIMITS: dict[str, tuple[float, float, str]] = {
    "water_temperature": (-40.0, 150.0, "°C"),
    "air_temperature": (-40.0, 150.0, "°C"),
    "humidity": (0.0, 100.0, "%"),
    "setpoint": (-40.0, 150.0, "°C"),
    "pid_output": (-100_000.0, 100_000.0, ""),
}

# The earliest timestamp a reading may have. A clock that lost its time
# restarts at a fixed date: 1970-01-01 (the Unix epoch, a Raspberry Pi with
# neither RTC nor network), 2000-01-01 (the reset value of common RTC chips)
# or year 1 (a zeroed datetime). This floor lies after all of them and before
# this software could run (Django 5.2 came out in 2025), with room for readings
# an older logger of the plant took. A stray early reading is not harmless:
# exports walk hour by hour from the oldest reading, so one from year 1 made a
# week's export take 35 s instead of 1 s.
EARLIEST = datetime(2020, 1, 1, tzinfo=UTC)
# How far ahead of this server's clock a reading may be: NTP keeps clocks within
# a second, so this allows a sensor host that drifts between syncs and refuses
# a clock set to the wrong day, month or year.
AHEAD = timedelta(minutes=5)


class InvalidReading(ValidationError, ValueError):
    """A value the plant cannot have produced; nothing was stored."""


def _shown(value: object) -> str:
    """A refused value as a message shows it: exact enough to see why, never a page long."""
    if isinstance(value, float):
        text = repr(value).removesuffix(".0")  # the shortest exact text: 100.0001, never 100
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**16:
        text = f"{Decimal(value):.3e}"  # 10**400 in ten characters, not four hundred
    else:
        text = repr(value)
    return text if len(text) <= 40 else f"{text[:40]}..."


def _number(field: str, raw: object) -> float:
    """raw as a finite float, or InvalidReading saying what it is instead."""
    if raw is None:
        raise InvalidReading(f"{field} is missing or not a number")
    if isinstance(raw, bool):
        raise InvalidReading(f"{field} is a truth value, not a number: {raw!r}")
    if isinstance(raw, bytes | bytearray | memoryview):
        # float() would take b"24", hiding a sensor loop that skipped decoding its text.
        raise InvalidReading(
            f"{field} is bytes, not a number: {_shown(raw)} (decode the sensor's text first)"
        )
    if not isinstance(raw, numbers.Real | Decimal | str):
        raise InvalidReading(f"{field} is not a number: {_shown(raw)}")
    try:
        value = float(raw)
    except OverflowError:  # an integer or fraction beyond any float: out of every range
        low, high, unit = LIMITS[field]
        raise InvalidReading(
            f"{field} {_shown(raw)}{unit} is outside the possible range {low:g}..{high:g}{unit}"
        ) from None
    except (TypeError, ValueError):
        raise InvalidReading(f"{field} is not a number: {_shown(raw)}") from None
    if not math.isfinite(value):
        raise InvalidReading(f"{field} is {value}: the sensor sent no usable value")
    return value


def validate_values(**values: float) -> dict[str, float]:
    """Return the values as floats, or raise InvalidReading naming the first bad one."""
    clean = {}
    for field, (low, high, unit) in LIMITS.items():
        value = _number(field, values.get(field))
        if not low <= value <= high:
            raise InvalidReading(
                f"{field} {_shown(value)}{unit} is outside the possible range {low:g}..{high:g}{unit}"
            )
        clean[field] = value
    return clean


def validate_timestamp(timestamp: object, *, now: datetime | None = None) -> datetime:
    """Return the timestamp, or raise InvalidReading when no working sensor clock can mean it."""
    if not isinstance(timestamp, datetime):
        raise InvalidReading(
            f"timestamp is not a date and time: {_shown(timestamp)} (pass a timezone-aware datetime)"
        )
    if timezone.is_naive(timestamp):
        raise InvalidReading(
            f"timestamp {timestamp.isoformat()} has no time zone: pass a timezone-aware datetime"
        )
    if timestamp < EARLIEST:
        raise InvalidReading(
            f"timestamp {timestamp.isoformat()} is before {EARLIEST:%Y-%m-%d}: check the sensor's clock "
            "(a clock that lost its time starts in 1970 or 2000)"
        )
    if timestamp > (now or timezone.now()) + AHEAD:
        raise InvalidReading(
            f"timestamp {timestamp.isoformat()} is more than {AHEAD.seconds // 60} minutes ahead of this "
            "server's clock: check the sensor's clock"
        )
    return timestamp
