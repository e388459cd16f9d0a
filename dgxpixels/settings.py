"""Settings for DGX Pixels: one file, configured by environment variables (see .env.example)."""
from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

from dgxpixels.env import (
    database_from_url,
    env_bool,
    env_file_mode,
    env_float,
    env_http_url,
    env_proxy_ssl_header,
    env_node_name,
    env_redis_url,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent

# The development key: with DEBUG off, every manage.py command and daphne refuse to start on it,
# or on any key shorter than 32 characters (batches/checks.py names DJANGO_SECRET_KEY and how to
# make one). Don't raise here: pytest imports these settings before its conftest runs.
DEV_SECRET_KEY = "dev-only-insecure-key-change-me-in-production"
SECRET_KEY = env_str("DJANGO_SECRET_KEY", DEV_SECRET_KEY)
# Off unless asked for: ./scripts/run.sh (the local demo) exports DJANGO_DEBUG=1 itself.
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = [h.strip() for h in env_str("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h.strip()]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "batches",  # before django_q: its `qcluster` command shadows django-q2's (batches/gpu_cluster.py)
    "django_q",
    "axes",  # login throttling
    "ninja",  # the HTTP API's docs page (its static files)
]
# daphne's app only makes `runserver` serve ASGI (WebSockets) in development; loading it imports
# Twisted (~0.4 s of CPU), which every other process (workers, commands) would pay for nothing.
if "runserver" in sys.argv:
    INSTALLED_APPS.insert(0, "daphne")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files, served by the app itself (daphne serves none): see STATIC_ROOT below.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, so it turns a locked-out sign-in (dashboard or admin) into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "dgxpixels.urls"
ASGI_APPLICATION = "dgxpixels.asgi.application"
WSGI_APPLICATION = "dgxpixels.wsgi.application"

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
            ],
        },
    },
]

DATABASES = {"default": database_from_url("DATABASE_URL", "sqlite:///db.sqlite3", base_dir=BASE_DIR)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# --- Login throttling (django-axes) ---------------------------------------------------------
# Every sign-in (the dashboard's and the admin's) goes through authenticate(), so the axes
# backend, first, counts failures for both.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = env_bool("DGX_LOGIN_THROTTLE", True)
AXES_FAILURE_LIMIT = int(env_float("DGX_LOGIN_FAILURE_LIMIT", 5, minimum=1))
AXES_COOLOFF_TIME = timedelta(minutes=env_float("DGX_LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
# Locked per username from one address: a typo-prone artist elsewhere in the studio still gets in.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# REMOTE_ADDR only: X-Forwarded-For is whatever the client writes (run daphne with
# --proxy-headers behind a reverse proxy, which sets REMOTE_ADDR from the proxy's header).
AXES_IPWARE_META_PRECEDENCE_ORDER = ("REMOTE_ADDR",)
AXES_LOCKOUT_CALLABLE = "batches.views.lockout.locked_out"

# --- Mail: password reset is offered only where mail can be sent ----------------------------
EMAIL_HOST = env_str("EMAIL_HOST", "")
if EMAIL_HOST:
    EMAIL_PORT = int(env_float("EMAIL_PORT", 25, minimum=1))
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
    DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "dgx-pixels@localhost")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(BASE_DIR / "staticfiles"))).resolve()
# WhiteNoise serves the static files. After `manage.py collectstatic` (run.sh and the production
# install run it) STATIC_ROOT holds hashed, gzip-compressed copies (app.3f2a9c0d1e2b.css and .gz)
# served with far-future cache headers. Without a collected manifest (a fresh checkout, the tests)
# the files are served straight from the app folders, unhashed, so pages still get their CSS and JS.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "dgxpixels.storage.StaticFilesStorage"},
}
# With DEBUG on (run.sh) edits in static/ show at once, collected or not.
WHITENOISE_USE_FINDERS = DEBUG or not (STATIC_ROOT / "staticfiles.json").is_file()

# --- Behind a reverse proxy, over HTTPS (production: see deploy/dgx-pixels.env.example) --------
# Origins allowed to POST forms, with scheme: https://pixels.studio.lan (comma-separated).
CSRF_TRUSTED_ORIGINS = [o.strip() for o in env_str("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]
# Redirect plain HTTP to HTTPS (behind a TLS proxy it only catches what bypasses the proxy:
# forwarded requests count as HTTPS through SECURE_PROXY_SSL_HEADER).
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
# Monitors on the box itself (systemd, Prometheus) ask daphne directly over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
# HSTS: browsers use HTTPS only for this long (seconds; 0 = no header). Start small (3600).
SECURE_HSTS_SECONDS = int(env_float("DJANGO_SECURE_HSTS_SECONDS", 0, minimum=0))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
# Cookies only over HTTPS.
SESSION_COOKIE_SECURE = env_bool("DJANGO_SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("DJANGO_CSRF_COOKIE_SECURE", False)
# "HTTP_X_FORWARDED_PROTO,https" behind a TLS proxy that sets X-Forwarded-Proto (and strips it
# from what clients send, as nginx's proxy_set_header does): requests it forwarded count as HTTPS. Empty: not behind such a proxy.
SECURE_PROXY_SSL_HEADER = env_proxy_ssl_header("DJANGO_SECURE_PROXY_SSL_HEADER")

# --- DGX Pixels -----------------------------------------------------------------------------
COMFYUI_URL = env_http_url("COMFYUI_URL", "http://127.0.0.1:8188")
OUTPUT_ROOT = Path(env_str("OUTPUT_ROOT", str(BASE_DIR / "outputs"))).resolve()
GPU_NODE = env_node_name("GPU_NODE", os.uname().nodename.split(".")[0] or "gpu0")
REDIS_URL = env_redis_url("REDIS_URL")
PROFILES_FILE = Path(env_str("PROFILES_FILE", str(BASE_DIR / "profiles" / "batch_profiles.yaml")))
# Mode of every file written under OUTPUT_ROOT (octal, e.g. 0640 for a studio group that reads
# the outputs). Unset: what the process umask allows (0644 under the usual umask 022).
OUTPUT_FILE_MODE = env_file_mode("DGX_OUTPUT_FILE_MODE")
WORKFLOWS_DIR = Path(env_str("WORKFLOWS_DIR", str(BASE_DIR / "workflows")))
# How long one ComfyUI unit may take before the worker gives up waiting on it (seconds).
UNIT_TIMEOUT = env_float("DGX_UNIT_TIMEOUT", 1800.0, minimum=1.0)
# A node whose in-flight units have had no heartbeat for this long is taken for dead; the other
# nodes reclaim its units (reconciling them with its ComfyUI when that still answers).
NODE_STALE_SECONDS = env_float("DGX_NODE_STALE_SECONDS", 30.0, minimum=1.0)
# Model affinity: a unit whose checkpoint is already loaded may overtake a unit of the same
# priority that needs a model swap, at most this many times per unit (0 turns affinity off).
AFFINITY_MAX_SKIPS = int(env_float("DGX_AFFINITY_MAX_SKIPS", 8, minimum=0))
# On SIGTERM/SIGINT the GPU worker claims nothing new and waits this long for the unit on the
# GPU to finish; past it the unit is handed back (reconciled by prompt id on the next start).
STOP_GRACE = env_float("DGX_STOP_GRACE", 30.0, minimum=0.0)
# The largest sheet (width and height, px) an export may make: 8192 is the common GPU texture limit.
SHEET_MAX_SIZE = int(env_float("DGX_SHEET_MAX_SIZE", 8192, minimum=16))
# The most cells (jobs) one comparison may have: the product of its axes' value counts.
COMPARISON_MAX_CELLS = int(env_float("DGX_COMPARISON_MAX_CELLS", 27, minimum=1))
# Start the GPU worker with the queue paused (after a restart, look before anything runs).
START_PAUSED = env_bool("DGX_START_PAUSED", False)
# Most images one user (not staff) may have waiting in the queue at once; 0 turns the limit off.
USER_QUEUE_LIMIT = int(env_float("DGX_USER_QUEUE_LIMIT", 20_000, minimum=0))
# Progress events older than this are pruned (hourly, and by batch_cleanup); the newest
# EVENT_KEEP_LAST always stay, so a page that reconnects can still catch up from its last id.
EVENT_RETENTION = timedelta(hours=env_float("DGX_EVENT_RETENTION_HOURS", 24, minimum=0))
EVENT_KEEP_LAST = int(env_float("DGX_EVENT_KEEP_LAST", 1000, minimum=1))
# --- Integrations (HTTP API, ZeroMQ gateway, webhooks) ----------------------------------------
# The dashboard's address as other programs reach it, for links in webhooks and replies
# (e.g. https://pixels.studio.lan); empty: links are paths only.
PUBLIC_URL = env_str("DGX_PUBLIC_URL", "").rstrip("/")
# Requests per minute one API token may make (each token counted on its own); 0 turns it off.
API_RATE_LIMIT = int(env_float("DGX_API_RATE_LIMIT", 600, minimum=0))
# The API's per-token request counts (batches/http_api/throttle.py) must be shared by every daphne
# process: Redis when configured, else a table in the database (not the per-process LocMem cache).
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "api_rate": ({"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                  "KEY_PREFIX": "dgx"} if REDIS_URL else
                 {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "dgx_api_rate",
                  "OPTIONS": {"MAX_ENTRIES": 5000}}),  # two keys per active token; expired ones culled first
}
# Webhooks are signed with this key (X-DGX-Signature); empty: a key derived from SECRET_KEY.
WEBHOOK_SECRET = env_str("DGX_WEBHOOK_SECRET", "")
# Loopback and private addresses are refused as webhook targets unless their host is listed here
# (comma-separated host names or addresses, e.g. "127.0.0.1,build.studio.lan").
WEBHOOK_ALLOW = [h.strip().lower() for h in env_str("DGX_WEBHOOK_ALLOW", "").split(",") if h.strip()]
# Delivery: attempt N waits WEBHOOK_RETRY_BASE * 2**(N-1) seconds after attempt N-1 failed (capped
# at an hour), up to WEBHOOK_MAX_ATTEMPTS attempts; one attempt waits WEBHOOK_TIMEOUT for an answer.
WEBHOOK_RETRY_BASE = env_float("DGX_WEBHOOK_RETRY_BASE", 10.0, minimum=0.01)
WEBHOOK_MAX_ATTEMPTS = int(env_float("DGX_WEBHOOK_MAX_ATTEMPTS", 8, minimum=1))
WEBHOOK_TIMEOUT = env_float("DGX_WEBHOOK_TIMEOUT", 10.0, minimum=0.1)

# --- Running on the GPU box (health, metrics, disk guard) ------------------------------------
# Below this much free space at OUTPUT_ROOT the GPU worker claims no new unit (running ones
# finish and are recorded); it carries on by itself once space is freed.
DISK_MIN_FREE_GB = env_float("DGX_DISK_MIN_FREE_GB", 5.0, minimum=0.0)
# /metrics (Prometheus) answers a request carrying `Authorization: Bearer <DGX_METRICS_TOKEN>`, or
# one from an address listed in DGX_METRICS_ALLOW (comma-separated; default loopback only).
METRICS_TOKEN = env_str("DGX_METRICS_TOKEN", "")
METRICS_ALLOW = [a.strip() for a in env_str("DGX_METRICS_ALLOW", "127.0.0.1,::1").split(",") if a.strip()]
# Batch size "auto" (batches/services/auto_batch.py): a size is used only when its figure in the
# profiles file's VRAM table plus this margin fits in the free VRAM ComfyUI reports. 4 GB is what
# one more image costs in that table ((38 - 10) / (8 - 1)).
VRAM_MARGIN_GB = env_float("DGX_VRAM_MARGIN_GB", 4.0, minimum=0.0)

# Fault injection for the crash tests only: "exit-after-download" kills the worker process after
# it has written a unit's files and before it records them. Never set it in production.
FAULT = env_str("DGX_FAULT", "")

# --- Channels -------------------------------------------------------------------------------
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}},
    }
else:
    # Embedded default: events are stored in the database by the worker and relayed into this
    # in-process layer by one relay task per daphne process (see batches/relay.py).
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- django-q2: one cluster per GPU, exactly one worker -------------------------------------
# Tasks are cheap "claim and run the next unit" nudges; the rows hold the truth, the retries
# and the attempt counts. See STACK-NOTES for why each value is what it is.
_Q_TASK_TIMEOUT = int(UNIT_TIMEOUT) + 120
# All nodes share the name (it salts the signed task payloads); each node has its own queue,
# named after GPU_NODE, so a nudge reaches the node it is meant for.
Q_CLUSTER = {
    "name": "dgxpixels",
    "cluster_name": f"gpu-{GPU_NODE}",
    "workers": 1,
    "queue_limit": 1,
    "max_attempts": 1,
    "ack_failures": True,
    "poll": 0.5,
    "timeout": _Q_TASK_TIMEOUT,
    "retry": 3 * _Q_TASK_TIMEOUT + 300,
    "catch_up": False,
    "save_limit": 200,
    "label": "GPU worker",
    "ALT_CLUSTERS": {},
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "batches": {"handlers": ["console"], "level": env_str("DGX_LOG_LEVEL", "INFO")},
        "django-q": {"handlers": ["console"], "level": env_str("DGX_Q_LOG_LEVEL", "INFO"), "propagate": False},
    },
}
