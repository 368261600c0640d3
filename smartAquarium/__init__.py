# Load the Celery app with Django, so tasks queued from the web use its settings.
from smartAquarium.celery import app as celery_app

__all__ = ("celery_app",)
