"""Small, loud readers for the environment variables that configure DGX Pixels.

A malformed value stops start-up with a message that names the variable and
says what a good value looks like.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured


def _bad(name: str, value: str, expected: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{name}={value!r} is not valid: {expected}.")


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise _bad(name, raw, "use 1/0, true/false, yes/no or on/off")


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise _bad(name, raw, "expected a number") from None
    if value < minimum:
        raise _bad(name, raw, f"expected a number >= {minimum}")
    return value


def env_file_mode(name: str) -> int | None:
    """An octal file mode such as 0640 or 664; None when unset (then the process umask decides)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    if not re.fullmatch(r"0?o?[0-7]{3}", raw):
        raise _bad(name, raw, "expected an octal file mode such as 0640 or 0664")
    return int(raw.lstrip("0o") or "0", 8)


def env_http_url(name: str, default: str) -> str:
    raw = env_str(name, default)
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise _bad(name, raw, "expected an http:// or https:// URL such as http://127.0.0.1:8188")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise _bad(name, raw, "the port must be a number from 1 to 65535") from None
    return raw.rstrip("/")


def env_redis_url(name: str) -> str | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in {"redis", "rediss", "unix"}:
        raise _bad(name, raw, "expected a URL such as redis://127.0.0.1:6379/0")
    try:
        parts.port  # noqa: B018
    except ValueError:
        raise _bad(name, raw, "the port must be a number from 1 to 65535") from None
    return raw


def env_node_name(name: str, default: str) -> str:
    raw = env_str(name, default)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", raw):
        raise _bad(name, raw, "use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return raw


def env_proxy_ssl_header(name: str) -> tuple[str, str] | None:
    """A header and the value that marks a request as HTTPS, as in "HTTP_X_FORWARDED_PROTO,https"."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    header, _, value = (part.strip() for part in raw.partition(","))
    if not re.fullmatch(r"HTTP_[A-Z0-9_]+", header) or not value:
        raise _bad(name, raw, "expected a header as Django names it and its HTTPS value, "
                              "such as HTTP_X_FORWARDED_PROTO,https")
    return header, value


def database_from_url(name: str, default: str, *, base_dir: Path) -> dict:
    """Turn DATABASE_URL (sqlite:///path or postgres://user:pw@host:port/db) into Django's dict."""
    raw = env_str(name, default)
    parts = urlsplit(raw)
    if parts.scheme == "sqlite":
        path = unquote(raw[len("sqlite://"):])
        if path.startswith("/") and not path.startswith("//"):
            # sqlite:///rel/path -> "rel/path" relative to the project; sqlite:////abs -> "/abs"
            path = path[1:]
        if not path:
            raise _bad(name, raw, "expected sqlite:///relative/path.sqlite3 or sqlite:////absolute/path.sqlite3")
        file = Path(path)
        if not file.is_absolute():
            file = base_dir / file
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(file),
            # IMMEDIATE: a web process and a qcluster writing at once get no "database is locked"
            # errors (STACK-NOTES: with WAL alone a contention test failed hundreds of times).
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 30,
                        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"},
            "TEST": {"NAME": str(file.with_name(file.stem + "_test.sqlite3"))},
        }
    if parts.scheme in {"postgres", "postgresql", "pgsql"}:
        if not parts.path.strip("/"):
            raise _bad(name, raw, "name the database, as in postgres://user@127.0.0.1:5432/dgxpixels")
        try:
            port = parts.port
        except ValueError:
            raise _bad(name, raw, "the port must be a number from 1 to 65535") from None
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.strip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(port or ""),
            "CONN_MAX_AGE": 0,
        }
    raise _bad(name, raw, "expected sqlite:///path/to/file.sqlite3 or postgres://user:password@host:5432/name")
