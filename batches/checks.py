"""Start-up checks for running in production (DEBUG off).

Registered in BatchesConfig.ready(), so `manage.py check`, every management command (the workers
included) and daphne (dgxpixels/asgi.py runs these at start-up) refuse to run on a secret key
that anyone can read in this repository, or on one too short to be safe.
"""
from __future__ import annotations

from django.core import checks

MIN_SECRET_KEY_LENGTH = 32
# `requires_system_checks` of the project's commands (the CLI and the workers): they refuse a weak
# key like every command, but skip the URL, admin and model checks, which import every view and
# cost ~0.4 s of CPU at each start; `manage.py check`, `migrate` and the web process run those.
COMMAND_CHECKS = ["dgx"]
MAKE_A_KEY = 'python -c "import secrets; print(secrets.token_urlsafe(50))"'


def secret_key_problem(settings) -> str | None:
    """What is wrong with settings.SECRET_KEY for a DEBUG-off process, or None."""
    if settings.DEBUG:
        return None
    key = settings.SECRET_KEY or ""
    dev_key = getattr(settings, "DEV_SECRET_KEY", None)
    if key == dev_key:
        why = ("DJANGO_SECRET_KEY is not set (or is the development key, published in this repository, "
               "which would let anyone forge sessions)")
    elif len(key) < MIN_SECRET_KEY_LENGTH:
        why = f"DJANGO_SECRET_KEY is {len(key)} characters long; it must be at least {MIN_SECRET_KEY_LENGTH}"
    else:
        return None
    return (f"{why}. With DJANGO_DEBUG off (the default) DGX Pixels needs a long random key of its own: "
            f"make one with  {MAKE_A_KEY}  and set DJANGO_SECRET_KEY to it (in the environment, or in "
            f"/etc/dgx-pixels/dgx-pixels.env for the systemd units). For the local demo, DJANGO_DEBUG=1 "
            f"instead: ./scripts/run.sh sets it for the processes it starts; export it to run ./dgx "
            f"commands next to them.")


# Tagged "dgx" too: the long-running workers check only this tag at start (see COMMAND_CHECKS).
@checks.register(checks.Tags.security, "dgx")
def check_secret_key(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    from django.conf import settings

    problem = secret_key_problem(settings)
    if problem is None:
        return []
    return [checks.Error(problem, hint=f"Set DJANGO_SECRET_KEY; make one with: {MAKE_A_KEY}", id="dgx.E001")]
