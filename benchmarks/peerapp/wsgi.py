"""The app's WSGI application, for gunicorn (sync workers) in benchmarks/peers_bench.py."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peerapp.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
