"""Throttled admin logins (django-axes): whose address counts, the lockout page, the lockout log.

The admin hands out whole database snapshots, so password guessing against it is
a threat to the backups; lockouts are written to scheduled_backup.log beside the
backup activity.
"""

import ipaddress
import shlex

from axes.signals import user_locked_out
from django.conf import settings
from django.contrib import admin
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from backup_tasks.storage.log import run_logger


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: the connection's, or behind REVERSE_PROXY_COUNT proxies the one
    the outermost proxy saw, counted from the right of X-Forwarded-For (a client can only
    prepend entries, never change those our proxies append)."""
    remote = request.META.get("REMOTE_ADDR")
    count = int(getattr(settings, "REVERSE_PROXY_COUNT", 0))
    if count <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    if len(forwarded) < count:
        return remote  # Not through all of our proxies.
    try:
        return str(ipaddress.ip_address(forwarded[-count]))
    except ValueError:
        return remote


def _cooloff_minutes() -> int | None:
    cooloff = settings.AXES_COOLOFF_TIME
    return None if cooloff is None else round(cooloff.total_seconds() / 60)


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """The admin's own page saying the login is locked and for how long (429, as axes answers)."""
    context = {
        **admin.site.each_context(request),
        "title": "Login locked",
        "cooloff_minutes": _cooloff_minutes(),
    }
    return TemplateResponse(request, "admin/login_locked.html", context, status=429).render()


@receiver(user_locked_out, dispatch_uid="backup_tasks.web.logins.log_lockout")
def log_lockout(sender, request: HttpRequest, username: str | None, ip_address: str | None, **kwargs):
    failures = getattr(request, "axes_failures_since_start", None) or settings.AXES_FAILURE_LIMIT
    minutes = _cooloff_minutes()
    until = (
        f"until {minutes} minutes after the last attempt"
        if minutes is not None
        else "until an administrator unlocks it"
    )
    run_logger().warning(
        "Admin login locked after %d failed attempts: user %r from %s, %s "
        "(unlock now: python manage.py axes_reset_username %s, or axes_reset_ip %s)",
        failures,
        username or "",
        ip_address or "an unknown address",
        until,
        shlex.quote(username) if username else "NAME",
        ip_address or "ADDRESS",
    )
