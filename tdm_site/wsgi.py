"""WSGI entry point: `gunicorn tdm_site.wsgi`."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tdm_site.settings")

application = get_wsgi_application()
