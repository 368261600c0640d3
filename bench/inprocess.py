"""Time one of our services inside a single Django process (start-up excluded).

    python -m bench.inprocess OPERATION RUNS [--files N] [--since WHEN] [--until WHEN]

The environment names the database and BACKUP_DIR as for manage.py. Prints one
JSON line: the seconds of each run, the SHA-256 of the last file written (or
download streamed) and the process's peak RSS. admin-csv and admin-json post
the readings admin's export form (--since and --until, plant time) to its real
view and read the download it streams, as the web server would.
"""

import argparse
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import django


def peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def admin_download(kind: str, since: str, until: str) -> str:
    """POST the export form to the admin's view and read the whole stream; its SHA-256."""
    from django.contrib.auth.models import User
    from django.test import RequestFactory
    from django.urls import resolve, reverse

    url = reverse("admin:readings_reading_export")
    request = RequestFactory().post(url, {"start": since, "end": until, "format": kind})
    # An unsaved superuser: the view needs a user who may view readings, and nothing is written.
    request.user = User(username="bench", is_active=True, is_staff=True, is_superuser=True)
    request._dont_enforce_csrf_checks = True
    response = resolve(url).func(request)
    if not getattr(response, "streaming", False):
        raise SystemExit(f"the admin answered {response.status_code} without a download")
    digest = hashlib.sha256()
    for block in response.streaming_content:
        digest.update(block)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "operation", choices=["snapshot", "csv", "json", "status", "cleanup", "admin-csv", "admin-json"]
    )
    parser.add_argument("runs", type=int)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--since", help="exports: plant time, YYYY-MM-DDTHH:MM:SS")
    parser.add_argument("--until", help="exports: plant time, YYYY-MM-DDTHH:MM:SS")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartAquarium.settings")
    django.setup()
    from datetime import datetime

    from backup_tasks import conf
    from backup_tasks.services import backup, cleanup
    from backup_tasks.services.status import backup_status, render_status
    from bench.run import export_sha256, make_cleanup_files

    root = conf.backup_dir()
    window = {
        key: datetime.fromisoformat(text).replace(tzinfo=conf.plant_zone())
        for key, text in (("start", args.since), ("end", args.until))
        if text
    }
    work = {
        "snapshot": backup.snapshot_database,
        "csv": lambda: backup.export_csv(**window),
        "json": lambda: backup.export_json(**window),
        "status": lambda: render_status(backup_status()),
        "cleanup": cleanup.cleanup_old_backups,
        "admin-csv": lambda: admin_download("csv", args.since, args.until),
        "admin-json": lambda: admin_download("json", args.since, args.until),
    }[args.operation]
    times, digest = [], None
    for _ in range(args.runs):
        if args.operation == "cleanup":
            make_cleanup_files(root, args.files)
        began = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - began)
        if args.operation.startswith("admin-"):
            digest = result
        if args.operation in ("csv", "json"):
            digest = export_sha256(Path(result.path))
        if args.operation in ("snapshot", "csv", "json"):
            for path in (result.path, *result.parts):
                Path(path).unlink()
    if args.operation == "cleanup":
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps({"times": times, "sha256": digest, "peak_rss_mb": round(peak_rss_mb(), 1)}))


if __name__ == "__main__":
    main()
