#!/usr/bin/env bash
# One command, on a fresh machine with Python 3.11+: create (or reuse) a virtualenv, install the
# project into it, and start the example with runserver (the in-memory layer and SQLite: no Redis
# needed). Open http://127.0.0.1:8000/.
#
#   bash example/start.sh [addrport]
#
# The venv is .venv at the repository root, or the active one ($VIRTUAL_ENV), or $VENV when set:
# Debian's and Ubuntu's system Python refuses `pip install` outside a venv
# (externally-managed-environment, PEP 668).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${VENV:-${VIRTUAL_ENV:-.venv}}"
if [ ! -x "$venv/bin/python" ]; then
  echo "Creating a virtualenv in $venv"
  if ! python3 -m venv "$venv"; then
    echo "python3 -m venv failed: on Debian or Ubuntu, apt-get install python3-venv, then run this again" >&2
    exit 1
  fi
fi
echo "Installing the project into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[speedups]"
"$venv/bin/python" example/manage.py migrate --noinput
exec "$venv/bin/python" example/manage.py runserver "${1:-127.0.0.1:8000}"
