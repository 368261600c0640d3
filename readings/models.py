from django.db import models
from django.db.models import Avg, Count, Max, Min
from django.utils import timezone

from readings.validation import validate_values


class ReadingQuerySet(models.QuerySet):
    def between(self, start=None, end=None):
        """Readings with start <= timestamp < end; either bound may be None."""
        qs = self
        if start is not None:
            qs = qs.filter(timestamp__gte=start)
        if end is not None:
            qs = qs.filter(timestamp__lt=end)
        return qs

    def stats(self) -> dict:
        """Count, ranges and averages in one aggregate query."""
        return self.aggregate(
            total=Count("id"),
            water_min=Min("water_temperature"),
            water_max=Max("water_temperature"),
            water_avg=Avg("water_temperature"),
            air_min=Min("air_temperature"),
            air_max=Max("air_temperature"),
            air_avg=Avg("air_temperature"),
            humidity_avg=Avg("humidity"),
        )


class Reading(models.Model):
    """One sample of the sensor loop (every 2 s in the plant)."""

    water_temperature = models.FloatField(help_text="°C")
    air_temperature = models.FloatField(help_text="°C")
    humidity = models.FloatField(help_text="% relative humidity")
    setpoint = models.FloatField(help_text="°C")
    pid_output = models.FloatField(verbose_name="PID output")
    timestamp = models.DateTimeField(default=timezone.now, db_index=True)

    objects = ReadingQuerySet.as_manager()

    class Meta:
        ordering = ["-timestamp"]
        get_latest_by = "timestamp"

    def __str__(self) -> str:
        when = timezone.localtime(self.timestamp).strftime("%Y-%m-%d %H:%M:%S")
        return f"{when}: water {self.water_temperature:.2f}°C, air {self.air_temperature:.2f}°C"

    def clean(self) -> None:
        validate_values(
            water_temperature=self.water_temperature,
            air_temperature=self.air_temperature,
            humidity=self.humidity,
            setpoint=self.setpoint,
            pid_output=self.pid_output,
        )
