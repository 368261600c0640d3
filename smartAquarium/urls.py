from django.contrib import admin
from django.urls import path

admin.site.site_header = "Heat Treatment Plant Control"
admin.site.site_title = "smartAquarium"

urlpatterns = [
    path("admin/", admin.site.urls),
]
