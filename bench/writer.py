"""A sensor loop for the benchmark: record_reading() every 20 ms until SIGTERM.

Prints "ready" after the first reading, then on SIGTERM one JSON line:
inserts, failed inserts (with the last error) and the longest stall, the
time from an insert's scheduled start to its commit.
"""

import json
import os
import signal
import sys
import time

import django

INTERVAL = 0.02


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartAquarium.settings")
    django.setup()
    from readings.services import record_reading

    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    inserts = failed = 0
    longest = 0.0
    stalls = []  # (seconds since start, stall) of inserts over 100 ms
    last_error = None
    began = time.perf_counter()
    slot = 0
    while not stopping:
        scheduled = began + slot * INTERVAL
        delay = scheduled - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        try:
            record_reading(
                water_temperature=25.0, air_temperature=24.0, humidity=60.0, setpoint=25.0, pid_output=90
            )
            inserts += 1
        except Exception as exc:  # Counted and reported, never hidden.
            failed += 1
            last_error = f"{type(exc).__name__}: {exc}"
        done = time.perf_counter()
        if inserts + failed == 1:
            print("ready", flush=True)  # The first insert also opens the connection.
        else:
            longest = max(longest, done - scheduled)
            if done - scheduled > 0.1:
                stalls.append((round(scheduled - began, 2), round(done - scheduled, 3)))
        # After a stall, carry on from the next free slot instead of bursting.
        slot = max(slot + 1, int((done - began) / INTERVAL) + 1)
    print(
        json.dumps(
            {
                "inserts": inserts,
                "failed": failed,
                "longest_stall_s": round(longest, 4),
                "last_error": last_error,
                "stalls_over_100ms": stalls,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
