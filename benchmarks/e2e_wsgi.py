"""The test project's WSGI application, for gunicorn in `benchmarks/e2e_bench.py` (side b).

    gunicorn -w 2 -k sync e2e_wsgi:application    (with the repository and benchmarks/ on PYTHONPATH)

The settings read TEST_REDIS_URL, TEST_LAYER_PREFIX and TEST_DB_PATH from the
environment, exactly as the runworker processes of side (a) do.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.project.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
