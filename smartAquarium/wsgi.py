import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from whitenoise import WhiteNoise

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartAquarium.settings")
# There is no web server in front to serve the admin's CSS and JavaScript:
# WhiteNoise serves what collectstatic put in STATIC_ROOT (scripts/demo.sh,
# scripts/serve.sh and the Dockerfile run it). runserver runs this application
# too, and with DEBUG off (the default) WhiteNoise is what serves them there.
# No STATIC_ROOT yet: nothing to add (collectstatic, then restart the server).
static_root = settings.STATIC_ROOT if settings.STATIC_ROOT.is_dir() else None
application = WhiteNoise(get_wsgi_application(), root=static_root, prefix=settings.STATIC_URL)
