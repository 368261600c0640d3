# The guide's hourly, daily and weekly backups as enabled periodic tasks in the
# plant's TIME_ZONE. Runs once; later edits in admin are never overwritten.

from django.conf import settings
from django.db import migrations

from backup_tasks.queueing.schedules import install_default_schedules


def install(apps, schema_editor):
    install_default_schedules(
        apps.get_model("django_celery_beat", "PeriodicTask"),
        apps.get_model("django_celery_beat", "CrontabSchedule"),
        settings.TIME_ZONE,
    )


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
