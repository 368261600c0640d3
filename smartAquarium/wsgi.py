import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from whitenoise import WhiteNoise

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartAquarium.settings")
# Under gunicorn (docker compose, systemd) there is no web server in front to
# serve the admin's CSS and JavaScript: WhiteNoise serves what collectstatic put in STATIC_ROOT.
# Without it (runserver in a checkout, which serves them itself) there is nothing to add.
static_root = settings.STATIC_ROOT if settings.STATIC_ROOT.is_dir() else None
application = WhiteNoise(get_wsgi_application(), root=static_root, prefix=settings.STATIC_URL)
