"""The one way the sensor process records a reading.

    from readings.services import record_reading
    record_reading(water_temperature=24.5, air_temperature=26.2, humidity=60.5,
                   setpoint=25.0, pid_output=120)

Values that no sensor can produce (NaN, infinities, humidity above 100 %, ...)
raise InvalidReading instead of being stored, so a broken probe shows up as an
error in the sensor loop rather than as garbage in every backup.
"""

import math
from datetime import datetime

from django.core.exceptions import ValidationError
from django.utils import timezone

from readings.models import Reading

# Plausible bounds per field: (low, high, unit). Wider than the plant ever
# runs, narrower than what a disconnected or shorted probe reports.
LIMITS: dict[str, tuple[float, float, str]] = {
    "water_temperature": (-40.0, 150.0, "°C"),
    "air_temperature": (-40.0, 150.0, "°C"),
    "humidity": (0.0, 100.0, "%"),
    "setpoint": (-40.0, 150.0, "°C"),
    "pid_output": (-100_000.0, 100_000.0, ""),
}


class InvalidReading(ValidationError, ValueError):
    """A value the plant cannot have produced; nothing was stored."""


def validate_values(**values: float) -> dict[str, float]:
    """Return the values as floats, or raise InvalidReading naming the first bad one."""
    clean = {}
    for field, (low, high, unit) in LIMITS.items():
        raw = values.get(field)
        if raw is None or isinstance(raw, bool):
            raise InvalidReading(f"{field} is missing or not a number")
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise InvalidReading(f"{field} is not a number: {raw!r}") from None
        if not math.isfinite(value):
            raise InvalidReading(f"{field} is {value}: the sensor sent no usable value")
        if not low <= value <= high:
            raise InvalidReading(
                f"{field} {value:g}{unit} is outside the possible range {low:g}..{high:g}{unit}"
            )
        clean[field] = value
    return clean


def record_reading(
    *,
    water_temperature: float,
    air_temperature: float,
    humidity: float,
    setpoint: float,
    pid_output: float,
    timestamp: datetime | None = None,
) -> Reading:
    """Validate and store one reading; timestamp defaults to now."""
    clean = validate_values(
        water_temperature=water_temperature,
        air_temperature=air_temperature,
        humidity=humidity,
        setpoint=setpoint,
        pid_output=pid_output,
    )
    if timestamp is None:
        timestamp = timezone.now()
    elif timezone.is_naive(timestamp):
        raise InvalidReading("timestamp must be timezone-aware")
    return Reading.objects.create(timestamp=timestamp, **clean)
