"""WSGI entry point: ``gunicorn crow.wsgi``."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crow.settings")
application = get_wsgi_application()
