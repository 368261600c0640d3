"""The Celery app: `celery -A smartAquarium worker -B` runs backups apart from the web server."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartAquarium.settings")

app = Celery("smartAquarium")
# Every CELERY_* Django setting configures Celery (JSON only, broker, time zone).
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
