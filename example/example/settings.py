"""Settings of the example: SQLite and the in-memory layer by default; a layer and a database from the environment.

- `CHANNEL_LAYER_URL` (else `REDIS_URL`, Heroku's name) selects the channel layer the Procfile's
  processes share: `redis://` (also `rediss://`, `unix://`, `redis+sentinel://s1:26379,s2:26379/mymaster/0`,
  `redis+cluster://n1:7000,n2:7001/`; several Redis URLs separated by spaces are client-side shards),
  `amqp://user:password@host:5672/vhost` or `amqps://` (RabbitMQ), `ipc://example` (one machine, no
  server: the name prefixes its files in /dev/shm; `ipc:///` alone uses `example`). Neither set: the
  in-memory layer, for `manage.py runserver` alone. `CHANNELS_PREFIX` sets the layer's prefix (default
  `example:`); for IPC the URL's name is the prefix, and `ipc:///` takes `CHANNELS_PREFIX`, else `example`.
- `REDIS_SSL_CERT_REQS` (`none`, `optional`, `required`) for rediss:// URLs that do not say
  (Heroku Key-Value Store: `none`).
- `DATABASE_URL` (`sqlite:///path` or `postgres://user:password@host:port/name`); default `example/db.sqlite3`.
- `DJANGO_DEBUG=0` turns DEBUG off; `DJANGO_SECRET_KEY`, `DJANGO_ALLOWED_HOSTS` (comma-separated).
"""

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from channels_core.layers.layer_url import kind_of, settings_from_url

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-secret-key-change-me-in-production-0123456789")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") != "0"
ALLOWED_HOSTS = [h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "channels_core",  # before staticfiles: its runserver runs the interface server and workers
    "channels_core.ops",  # the operations page in the admin (its socket: example/routing.py)
    "django.contrib.staticfiles",
    "chat",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "example.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]


def database_from_url(url: str) -> dict:
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": unquote(parsed.path[1:] if url.startswith("sqlite:////") else parsed.path.lstrip("/")),
        }
    if parsed.scheme in ("postgres", "postgresql", "pgsql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": parsed.path.lstrip("/"),
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
        }
    raise ValueError(f"DATABASE_URL {url!r}: use sqlite:///path or postgres://user:password@host:port/name")


DATABASES = {
    "default": database_from_url(os.environ["DATABASE_URL"])
    if os.environ.get("DATABASE_URL")
    else {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}
}

CHANNEL_LAYER_URL = os.environ.get("CHANNEL_LAYER_URL") or os.environ.get("REDIS_URL")
# Heroku Key-Value Store (the heroku-redis add-on) gives a rediss:// REDIS_URL with a self-signed
# certificate, and Heroku says not to verify it: REDIS_SSL_CERT_REQS=none (app.json sets it) adds
# ssl_cert_reqs to each rediss:// URL that does not name it.
if CHANNEL_LAYER_URL and os.environ.get("REDIS_SSL_CERT_REQS"):
    CHANNEL_LAYER_URL = " ".join(
        url + ("&" if "?" in url else "?") + "ssl_cert_reqs=" + os.environ["REDIS_SSL_CERT_REQS"]
        if url.startswith("rediss://") and "ssl_cert_reqs=" not in url
        else url
        for url in CHANNEL_LAYER_URL.split()
    )
if CHANNEL_LAYER_URL and not os.environ.get("CHANNEL_LAYER_URL"):
    # REDIS_URL names Redis whatever it holds, so a mistyped one ("redis//host:6379") reaches the Redis
    # layer, whose `manage.py check` message says how to write it, instead of failing this import.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_core.layers.RedisChannelLayer",
            "ROUTING": "example.routing.channel_routing",
            "CONFIG": {"hosts": CHANNEL_LAYER_URL.split(), "prefix": os.environ.get("CHANNELS_PREFIX", "example:")},
        }
    }
elif CHANNEL_LAYER_URL:
    # A layer's prefix, unless the URL names one (ipc://NAME); IPC prefixes are file names: no colon.
    _ipc = kind_of(CHANNEL_LAYER_URL) == "ipc"
    CHANNEL_LAYERS = {
        "default": settings_from_url(
            CHANNEL_LAYER_URL,
            routing="example.routing.channel_routing",
            prefix=os.environ.get("CHANNELS_PREFIX", "example" if _ipc else "example:"),
        )
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_core.layers.InMemoryChannelLayer",
            "ROUTING": "example.routing.channel_routing",
        }
    }

STATIC_URL = "/static/"
# Where `manage.py collectstatic` copies the static files: Heroku's Python buildpack runs it on every build
# and fails the build without STATIC_ROOT. The example serves its files itself (urls.py), not from here.
STATIC_ROOT = BASE_DIR / "staticfiles"
# Aware datetimes stored in UTC, and UTC for everything shown: Django also sets the process's TZ to
# TIME_ZONE, so the worker's and runserver's log lines are in UTC, not in Django's default America/Chicago.
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGIN_URL = "/admin/login/"
