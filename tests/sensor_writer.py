"""A stand-in for the plant's sensor loop: record_reading() every 20 ms until told to stop.

Run as `python tests/sensor_writer.py STOP_FILE [--close]` with DATABASE_URL set;
prints one JSON line: readings written, failed inserts, longest insert in seconds.
With --close the connection is closed after each insert, as Django closes it
at the end of every request (CONN_MAX_AGE=0): each insert then opens the
database afresh, and each close may find itself the last connection.
"""

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartAquarium.settings")

import django

django.setup()

from django.db import connection  # noqa: E402

from readings.services import record_reading  # noqa: E402


def main(stop_file: Path, close: bool) -> None:
    written = failed = 0
    longest = 0.0
    errors: list[str] = []
    while not stop_file.exists():
        began = time.monotonic()
        try:
            record_reading(
                water_temperature=25.0, air_temperature=24.0, humidity=60.0, setpoint=25.0, pid_output=100
            )
            written += 1
        except Exception as exc:
            failed += 1
            errors.append(str(exc))
        finally:
            if close:
                connection.close()
        longest = max(longest, time.monotonic() - began)
        time.sleep(0.02)
    print(json.dumps({"written": written, "failed": failed, "longest_s": longest, "errors": errors[:3]}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), "--close" in sys.argv[2:])
