"""The project's settings plus the two peers, for the benchmark's peer runs only."""

import os

from smartAquarium.settings import *  # noqa: F403
from smartAquarium.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "dbbackup", "import_export"]

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    # django-dbbackup writes its snapshots here, as its documentation sets it up.
    "dbbackup": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": os.environ.get("BENCH_DBBACKUP_DIR", "dbbackup")},
    },
}
