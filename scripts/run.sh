#!/usr/bin/env bash
# Set up and start DGX Pixels on its embedded default (SQLite, django-q2's ORM broker, daphne):
#   ./scripts/run.sh            -> http://127.0.0.1:8000/
# When nothing answers at COMFYUI_URL (default http://127.0.0.1:8188), the ComfyUI simulator is
# started there, so the whole thing works on a machine without a GPU.
# It is the local demo, so it runs with DJANGO_DEBUG=1 (detailed error pages, and the development
# secret key is accepted). Everywhere else DEBUG is off by default and a DJANGO_SECRET_KEY of 32+
# characters is required: see README, "Production install on the GPU box".
set -euo pipefail
cd "$(dirname "$0")/.."
export DJANGO_DEBUG=${DJANGO_DEBUG:-1}
./scripts/setup.sh
PY=.venv/bin/python
$PY manage.py migrate --noinput -v0
# Hashed, compressed copies of the CSS/JS into staticfiles/ (served by WhiteNoise; fast when unchanged).
$PY manage.py collectstatic --noinput -v0
$PY manage.py ensure_admin

# The launcher starts the simulator (when no ComfyUI answers), the GPU worker and daphne, restarts
# a component that dies (saying which and why), and on Ctrl-C/SIGTERM stops them all in order.
exec $PY scripts/launcher.py
