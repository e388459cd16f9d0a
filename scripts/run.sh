#!/usr/bin/env bash
# Set up and start DGX Pixels on its embedded default (SQLite, django-q2's ORM broker, daphne):
#   ./scripts/run.sh            -> http://127.0.0.1:8000/
# When nothing answers at COMFYUI_URL (default http://127.0.0.1:8188), the ComfyUI simulator is
# started there, so the whole thing works on a machine without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
PY=.venv/bin/python
$PY manage.py migrate --noinput -v0
$PY manage.py ensure_admin

PORT=${PORT:-8000}
export COMFYUI_URL=${COMFYUI_URL:-http://127.0.0.1:8188}
pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if ! $PY -c "import os,requests; requests.get(os.environ['COMFYUI_URL']+'/system_stats', timeout=2)" 2>/dev/null; then
  sim_port=$($PY -c "import os; from urllib.parse import urlsplit; print(urlsplit(os.environ['COMFYUI_URL']).port or 8188)")
  echo "No ComfyUI answers at $COMFYUI_URL: starting the ComfyUI simulator on port $sim_port."
  $PY manage.py comfyui_sim --host 127.0.0.1 --port "$sim_port" --step-ms "${SIM_STEP_MS:-50}" &
  pids+=($!)
fi
$PY manage.py qcluster &
pids+=($!)
echo "DGX Pixels: http://127.0.0.1:$PORT/  (admin: http://127.0.0.1:$PORT/admin/)  Ctrl-C stops everything."
.venv/bin/daphne -b 127.0.0.1 -p "$PORT" dgxpixels.asgi:application &
pids+=($!)
wait -n
