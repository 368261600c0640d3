"""The backup dashboard: "are my data safe?" on one admin page."""

from django.core.exceptions import PermissionDenied
from django.http import HttpResponse

DASHBOARD_PERMISSION = "backup_tasks.view_dashboard"


def dashboard(request):
    if not request.user.has_perm(DASHBOARD_PERMISSION):
        raise PermissionDenied
    return HttpResponse("Backup dashboard")


def run_job(request):
    raise PermissionDenied
