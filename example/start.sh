#!/usr/bin/env bash
# One command, on a fresh machine with Python 3.11+: install the project and start the example
# with runserver (the in-memory layer and SQLite: no Redis needed). Open http://127.0.0.1:8000/.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e ".[speedups]"
python3 example/manage.py migrate --noinput
exec python3 example/manage.py runserver "${1:-127.0.0.1:8000}"
