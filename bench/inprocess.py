"""Time one of our services inside a single Django process (start-up excluded).

    python -m bench.inprocess OPERATION RUNS [--files N]

The environment names the database and BACKUP_DIR as for manage.py. Prints one
JSON line: the seconds of each run and the SHA-256 of the last file written.
"""

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import django


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("operation", choices=["snapshot", "csv", "json", "status", "cleanup"])
    parser.add_argument("runs", type=int)
    parser.add_argument("--files", type=int, default=10_000)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartAquarium.settings")
    django.setup()
    from backup_tasks import conf
    from backup_tasks.services import backup, cleanup
    from backup_tasks.services.status import backup_status, render_status
    from backup_tasks.storage.checksums import file_sha256
    from bench.run import make_cleanup_files

    root = conf.backup_dir()
    work = {
        "snapshot": backup.snapshot_database,
        "csv": backup.export_csv,
        "json": backup.export_json,
        "status": lambda: render_status(backup_status()),
        "cleanup": cleanup.cleanup_old_backups,
    }[args.operation]
    times, digest = [], None
    for _ in range(args.runs):
        if args.operation == "cleanup":
            make_cleanup_files(root, args.files)
        began = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - began)
        if args.operation in ("csv", "json"):
            digest = file_sha256(Path(result.path))
        if args.operation in ("snapshot", "csv", "json"):
            Path(result.path).unlink()
    if args.operation == "cleanup":
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps({"times": times, "sha256": digest}))


if __name__ == "__main__":
    main()
