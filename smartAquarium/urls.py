from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "Heat Treatment Plant Control"
admin.site.site_title = "smartAquarium"

urlpatterns = [
    path("admin/backups/", include("backup_tasks.urls")),
    path("admin/", admin.site.urls),
]
