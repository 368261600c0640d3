import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from whitenoise import WhiteNoise

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartAquarium.settings")
# Under gunicorn (docker compose, systemd) there is no web server in front to
# serve the admin's CSS and JavaScript: WhiteNoise serves what collectstatic put in STATIC_ROOT.
application = WhiteNoise(get_wsgi_application(), root=settings.STATIC_ROOT, prefix=settings.STATIC_URL)
