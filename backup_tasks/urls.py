"""The operator's pages under /admin/backups/: the dashboard and file downloads.

Every view is wrapped in admin.site.admin_view (staff login, CSRF) and checks
a permission of ours; nothing of the backup folder is served anywhere else.
"""

from django.contrib import admin
from django.urls import path

from backup_tasks.web import dashboard, downloads

app_name = "backup_tasks"

urlpatterns = [
    path("", admin.site.admin_view(dashboard.dashboard), name="dashboard"),
    path("status/", admin.site.admin_view(dashboard.status_report), name="status"),
    path("live/", admin.site.admin_view(dashboard.live), name="live"),
    path("run/", admin.site.admin_view(dashboard.run_job), name="run"),
    path("download/<path:name>", admin.site.admin_view(downloads.download), name="download"),
]
