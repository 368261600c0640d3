"""Realistic demo readings: a heated tank settling around its setpoint.

Water temperature follows a first-order model (heater power in, losses to the
air out) driven by a PID controller whose output is an 8-bit PWM duty (0-255);
air temperature and humidity swing with the time of day; every sensor adds
noise. Rows are produced as plain tuples so a year can be written in minutes.
"""

import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime

DAY = 86_400


class PlantModel:
    def __init__(self, *, seed: int = 2, start_temperature: float = 21.0) -> None:
        self.rng = random.Random(seed)
        self.water = start_temperature
        self.integral = 0.0
        self.previous_error = 0.0

    def setpoint_at(self, local_seconds_of_day: int) -> float:
        # A warmer soak from 08:00 to 16:00, otherwise the holding temperature.
        return 26.0 if 8 * 3600 <= local_seconds_of_day < 16 * 3600 else 25.0

    def step(self, epoch: int, dt: float) -> tuple[float, float, float, float, float]:
        rng = self.rng
        phase = (epoch % DAY) / DAY * 2 * math.pi
        air = 24.0 + 3.0 * math.sin(phase - 2.0) + rng.gauss(0, 0.08)
        humidity = min(100.0, max(0.0, 62.0 - 6.0 * math.sin(phase - 2.0) + rng.gauss(0, 0.4)))
        setpoint = self.setpoint_at(epoch % DAY)

        error = setpoint - self.water
        self.integral = min(400.0, max(-400.0, self.integral + error * dt))
        derivative = (error - self.previous_error) / dt
        self.previous_error = error
        output = 90.0 * error + 0.35 * self.integral + 20.0 * derivative
        pid = float(min(255, max(0, round(output))))

        # Heater adds up to 0.004 °C/s at full power; the tank loses heat to the air.
        self.water += (0.004 * pid / 255.0 - 0.0002 * (self.water - air)) * dt
        water = self.water + rng.gauss(0, 0.02)
        return (round(water, 2), round(air, 2), round(humidity, 2), setpoint, pid)


def generate(
    *, start_epoch: int, count: int, interval: int, seed: int = 2
) -> Iterator[tuple[float, float, float, float, float, str]]:
    """Yield (water, air, humidity, setpoint, pid, utc_text) rows, oldest first."""
    model = PlantModel(seed=seed)
    hms = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(DAY)]
    day_prefix: dict[int, str] = {}
    for i in range(count):
        epoch = start_epoch + i * interval
        day = epoch // DAY
        prefix = day_prefix.get(day)
        if prefix is None:
            prefix = datetime.fromtimestamp(day * DAY, UTC).strftime("%Y-%m-%d ")
            day_prefix.clear()
            day_prefix[day] = prefix
        yield (*model.step(epoch, interval), prefix + hms[epoch % DAY])
