"""Settings of the Django project the integration tests serve through the real stack.

The layer's key prefix and the SQLite file come from the environment, so
every test gets its own.
"""

import os
import tempfile

BASE_DIR = os.path.dirname(os.path.abspath(__file__))
SECRET_KEY = "test-only-secret-key-not-for-production-0123456789"
DEBUG = os.environ.get("TEST_DEBUG", "") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "channels_core",  # before staticfiles, so its runserver wins (check channels_core.W001)
    "channels_core.delay",
    "django.contrib.staticfiles",
    "tests.project.app",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "tests.project.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [os.path.join(BASE_DIR, "templates")],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("TEST_DB_PATH", os.path.join(tempfile.gettempdir(), "channels_core_test.sqlite3")),
        # A file, so ChannelLiveServerTestCase's worker processes share the test database.
        "TEST": {"NAME": os.path.join(tempfile.gettempdir(), f"channels_core_test_{os.getpid()}.sqlite3")},
    }
}
STATIC_URL = "/static/"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
SESSION_ENGINE = os.environ.get("TEST_SESSION_ENGINE", "django.contrib.sessions.backends.db")

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_core.layers.RedisChannelLayer",
        "CONFIG": {
            "hosts": [os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")],
            "prefix": os.environ.get("TEST_LAYER_PREFIX", "project:"),
            "blocking_timeout": 1,
            "capacity": int(os.environ.get("TEST_LAYER_CAPACITY", "100")),
            "group_history": {"hist-*": {"size": 1000, "ttl": 300}},  # tests.project.app.history_consumers
        },
        "ROUTING": "tests.project.routing.channel_routing",
    },
}
# ChannelLiveServerTestCase's processes inherit this environment, so they compute the same prefix.
CHANNEL_LAYERS["default"]["TEST_CONFIG"] = {
    **CHANNEL_LAYERS["default"]["CONFIG"],
    "prefix": os.environ.get("TEST_LAYER_PREFIX", "project:") + "live:",
}
if os.environ.get("TEST_INMEMORY") == "1":
    CHANNEL_LAYERS["default"] = {
        "BACKEND": "channels_core.layers.InMemoryChannelLayer",
        "ROUTING": "tests.project.routing.channel_routing",
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "worker": {"handlers": ["console"], "level": "INFO"},
        "channels_core": {"handlers": ["console"], "level": "INFO"},
    },
}
if os.environ.get("TEST_CHANNEL_ROUTING"):
    CHANNEL_LAYERS["default"]["ROUTING"] = os.environ["TEST_CHANNEL_ROUTING"]
