"""What a sensor can have produced: values outside these bounds are refused, never stored."""

import math

from django.core.exceptions import ValidationError

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
