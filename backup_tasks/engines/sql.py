"""ORM expressions whose SQL differs from one database engine to the next."""

from django.db.models import Func, IntegerField, Value
from django.db.models.functions import Cast, Substr


class EpochSeconds(Func):
    """Seconds since 1970 of a datetime column, computed in the database."""

    output_field = IntegerField()

    def as_sqlite(self, compiler, connection, **extra):
        # strftime's format goes in as a parameter: a literal %s would be taken for one.
        # Whole seconds only: strftime would round 11:49:59.9999 up into the next bucket.
        [timestamp] = self.get_source_expressions()
        seconds = Func(Value("%s"), Substr(timestamp, 1, 19), function="strftime")
        return Cast(seconds, IntegerField()).as_sql(compiler, connection, **extra)

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(
            compiler,
            connection,
            template="CAST(FLOOR(EXTRACT(EPOCH FROM %(expressions)s)) AS BIGINT)",
            **extra,
        )
