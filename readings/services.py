"""The one way the sensor process records a reading.

    from readings.services import record_reading
    record_reading(water_temperature=24.5, air_temperature=26.2, humidity=60.5,
                   setpoint=25.0, pid_output=120)

Values that no sensor can produce (NaN, infinities, humidity above 100 %, bytes,
a timestamp from year 1 or next year, ...) raise InvalidReading instead of being
stored, so a broken probe shows up as an error in the sensor loop rather than as
garbage in every backup.
"""

from datetime import datetime

from django.utils import timezone

from readings.models import Reading
from readings.validation import InvalidReading, validate_timestamp, validate_values

__all__ = ["InvalidReading", "record_reading", "validate_timestamp", "validate_values"]


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
    timestamp = timezone.now() if timestamp is None else validate_timestamp(timestamp)
    return Reading.objects.create(timestamp=timestamp, **clean)
