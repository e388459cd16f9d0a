"""Production mode, with real processes: DEBUG off by default, no start on a weak secret key,
`check --deploy` clean on the documented configuration, static files served by the app itself
(hashed, compressed, cached for a year once collected), and systemd units that name real commands.
"""
from __future__ import annotations

import configparser
import gzip
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from django.core.management import get_commands, load_command_class

from tests.processes import MANAGE, ROOT, Proc, free_port, start_daphne
from tests.production_support import GOOD_KEY, collected_static, debug_off_env, manage  # noqa: F401

DEPLOY = ROOT / "deploy"
ENV_EXAMPLE = DEPLOY / "dgx-pixels.env.example"
INSTALL_ROOT = "/opt/dgx-pixels"
MAKE_A_KEY = 'python -c "import secrets; print(secrets.token_urlsafe(50))"'


def env_file(path: Path) -> dict[str, str]:
    """VAR=value lines of a systemd environment file (comments and blank lines skipped)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", name), f"{path.name}: not VAR=value: {line!r}"
            values[name] = value
    return values


# --- the secret key -------------------------------------------------------------------------

def test_with_debug_off_every_command_refuses_a_missing_or_short_secret_key_and_says_how_to_make_one():
    check = [sys.executable, MANAGE, "check"]
    cases = {  # run at once: each is a whole Django start-up
        "no key, DEBUG unset (off by default)": (check, debug_off_env(DJANGO_SECRET_KEY=None, DJANGO_DEBUG=None)),
        "short key": (check, debug_off_env(DJANGO_SECRET_KEY="x" * 31)),
        "a worker, no key": ([sys.executable, MANAGE, "sprite_worker", "--once"], debug_off_env(DJANGO_SECRET_KEY=None)),
        "good key": (check, debug_off_env(DJANGO_SECRET_KEY=GOOD_KEY)),
        "DEBUG on, no key (the local demo)": (check, debug_off_env(DJANGO_SECRET_KEY=None, DJANGO_DEBUG="1")),
    }
    running = {name: subprocess.Popen(args, env=env, cwd=ROOT, text=True, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT)
               for name, (args, env) in cases.items()}
    results = {name: (p.wait(timeout=90), p.stdout.read()) for name, p in running.items()}
    for name in ("no key, DEBUG unset (off by default)", "short key", "a worker, no key"):
        code, output = results[name]
        assert code != 0, f"{name}: it ran:\n{output}"
        assert "dgx.E001" in output and "DJANGO_SECRET_KEY" in output and MAKE_A_KEY in output, output
    assert "development key" in results["no key, DEBUG unset (off by default)"][1]
    assert "31 characters long; it must be at least 32" in results["short key"][1]
    for name in ("good key", "DEBUG on, no key (the local demo)"):
        code, output = results[name]
        assert code == 0 and "System check identified no issues" in output, f"{name}:\n{output}"


def test_daphne_refuses_to_serve_on_the_development_key_naming_the_variable(tmp_path):
    port = free_port()
    daphne = str(Path(sys.executable).with_name("daphne"))
    proc = Proc([daphne, "-b", "127.0.0.1", "-p", str(port), "dgxpixels.asgi:application"],
                debug_off_env(DJANGO_SECRET_KEY=None), tmp_path / "daphne.log").start()
    try:
        code = proc.popen.wait(timeout=30)
    finally:
        proc.discard()
    assert code != 0
    log = proc.log()
    assert "ImproperlyConfigured" in log and "DJANGO_SECRET_KEY" in log and MAKE_A_KEY in log, log
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=2)


# --- the documented production configuration ------------------------------------------------

def test_check_deploy_is_clean_on_the_documented_production_configuration(tmp_path):
    documented = env_file(ENV_EXAMPLE)
    for name in ("DJANGO_ALLOWED_HOSTS", "DJANGO_CSRF_TRUSTED_ORIGINS", "DJANGO_SECURE_SSL_REDIRECT",
                 "DJANGO_SECURE_HSTS_SECONDS", "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", "DJANGO_SECURE_HSTS_PRELOAD",
                 "DJANGO_SESSION_COOKIE_SECURE", "DJANGO_CSRF_COOKIE_SECURE", "DJANGO_SECURE_PROXY_SSL_HEADER",
                 "HOST", "PORT", "DJANGO_STATIC_ROOT"):
        assert documented.get(name), f"{ENV_EXAMPLE.name} does not set {name}"
        assert f"# {name}=" in (ROOT / ".env.example").read_text(), f".env.example does not describe {name}"
    assert documented["DJANGO_SECRET_KEY"] == "" and documented["DJANGO_DEBUG"] == "0"  # no key ships
    # The file as an administrator fills it in: a key of its own, and (here) paths under tmp_path.
    text = ENV_EXAMPLE.read_text()
    text = text.replace("DJANGO_SECRET_KEY=\n", f"DJANGO_SECRET_KEY={GOOD_KEY}\n").replace("/var/lib/dgx-pixels", str(tmp_path))
    filled = tmp_path / "dgx-pixels.env"
    filled.write_text(text)
    # deploy/dgx-manage loads the file as the units do; nothing else from this environment leaks in.
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "DGX_ENV_FILE": str(filled)}
    result = subprocess.run([str(DEPLOY / "dgx-manage"), "check", "--deploy"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout, result.stdout + result.stderr
    # The same file without a key: refused, naming the variable.
    filled.write_text(text.replace(f"DJANGO_SECRET_KEY={GOOD_KEY}\n", "DJANGO_SECRET_KEY=\n"))
    result = subprocess.run([str(DEPLOY / "dgx-manage"), "check"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "DJANGO_SECRET_KEY" in result.stderr


def test_the_proxy_header_variable_is_read_strictly(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from dgxpixels.env import env_proxy_ssl_header

    monkeypatch.setenv("DJANGO_SECURE_PROXY_SSL_HEADER", " HTTP_X_FORWARDED_PROTO , https ")
    assert env_proxy_ssl_header("DJANGO_SECURE_PROXY_SSL_HEADER") == ("HTTP_X_FORWARDED_PROTO", "https")
    monkeypatch.setenv("DJANGO_SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto: https")
    with pytest.raises(ImproperlyConfigured, match="DJANGO_SECURE_PROXY_SSL_HEADER.*HTTP_X_FORWARDED_PROTO,https"):
        env_proxy_ssl_header("DJANGO_SECURE_PROXY_SSL_HEADER")
    monkeypatch.delenv("DJANGO_SECURE_PROXY_SSL_HEADER")
    assert env_proxy_ssl_header("DJANGO_SECURE_PROXY_SSL_HEADER") is None


def test_the_local_demo_keeps_debug_on_and_collects_static_files():
    run_sh = (ROOT / "scripts" / "run.sh").read_text()
    assert 'export DJANGO_DEBUG=${DJANGO_DEBUG:-1}' in run_sh
    assert run_sh.index("migrate") < run_sh.index("collectstatic --noinput") < run_sh.index("launcher.py")
    assert "staticfiles/" in (ROOT / ".gitignore").read_text().splitlines()


# --- static files and error pages with DEBUG off ---------------------------------------------

def test_debug_off_without_collected_files_serves_css_and_the_friendly_404(tmp_path, worker_env, session_cookie):
    proc, url = start_daphne(tmp_path, {**worker_env, "DJANGO_DEBUG": "0",
                                        "DJANGO_STATIC_ROOT": str(tmp_path / "not-collected")})
    try:
        css = requests.get(f"{url}/static/batches/css/app.css", timeout=10)
        assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
        assert ".mainnav" in css.text
        assert requests.get(f"{url}/static/batches/css/no-such.css", timeout=10).status_code == 404
        _, cookie = session_cookie("artist")
        page = requests.get(f"{url}/no/such/page/", headers={"Cookie": cookie}, timeout=10)
        assert page.status_code == 404
        assert "Nothing here" in page.text and "/no/such/page/" in page.text and "Traceback" not in page.text
        assert 'href="/static/batches/css/app.css"' in page.text  # no manifest: plain names
    finally:
        proc.discard()


def test_collected_static_files_are_hashed_compressed_and_cached_for_a_year(
        tmp_path, worker_env, session_cookie, collected_static):
    assert list(collected_static.glob("batches/css/app.*.css.gz")), "no compressed, hashed app.css"
    proc, url = start_daphne(tmp_path, {**worker_env, "DJANGO_DEBUG": "0", "DJANGO_STATIC_ROOT": str(collected_static)})
    try:
        _, cookie = session_cookie("artist")
        page = requests.get(f"{url}/", headers={"Cookie": cookie}, timeout=10)
        assert page.status_code == 200, page.text[:500]
        hashed = re.findall(r'(?:href|src)="(/static/[^"]+)"', page.text)
        assert hashed and all(re.search(r"\.[0-9a-f]{12}\.(css|js)$", name) for name in hashed), hashed
        css = next(name for name in hashed if name.startswith("/static/batches/css/app."))
        raw = requests.get(url + css, headers={"Accept-Encoding": "gzip"}, timeout=10, stream=True)
        assert raw.status_code == 200 and raw.headers["Content-Type"].startswith("text/css")
        assert raw.headers["Content-Encoding"] == "gzip"
        assert ".mainnav" in gzip.decompress(raw.raw.read()).decode()
        cache = raw.headers["Cache-Control"]
        assert "immutable" in cache and int(re.search(r"max-age=(\d+)", cache).group(1)) >= 365 * 24 * 3600, cache
        plain = requests.get(url + css, headers={"Accept-Encoding": "identity"}, timeout=10)
        assert plain.status_code == 200 and "Content-Encoding" not in plain.headers and ".mainnav" in plain.text
        # The friendly 404 names the hashed stylesheet too.
        missing = requests.get(f"{url}/no/such/page/", headers={"Cookie": cookie}, timeout=10)
        assert missing.status_code == 404 and "Nothing here" in missing.text and css in missing.text
    finally:
        proc.discard()


# --- systemd units -----------------------------------------------------------------------------

def read_unit(path: Path) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None, strict=True, delimiters=("=",))
    unit.optionxform = str  # systemd keys are case-sensitive
    unit.read_string(path.read_text(), source=str(path))
    return unit


SERVICES = {
    "dgx-pixels-web.service": None,  # daphne
    "dgx-pixels-gpu-worker.service": "qcluster",
    "dgx-pixels-sprite-worker.service": "sprite_worker",
    "dgx-pixels-webhook-worker.service": "webhook_worker",
    "dgx-pixels-zmq-gateway.service": "zmq_gateway",
}


def test_the_unit_files_parse_and_start_real_commands_of_this_checkout():
    assert sorted(p.name for p in DEPLOY.glob("*.service")) == sorted(SERVICES)
    documented = env_file(ENV_EXAMPLE)
    commands = get_commands()
    for name, subcommand in SERVICES.items():
        unit = read_unit(DEPLOY / name)
        assert set(unit.sections()) == {"Unit", "Service", "Install"}, name
        service = unit["Service"]
        assert service["User"] == "dgx-pixels" and service["WorkingDirectory"] == INSTALL_ROOT, name
        assert service["EnvironmentFile"] == "/etc/dgx-pixels/dgx-pixels.env", name
        assert service["Restart"] == "on-failure" and service["StandardOutput"] == "journal", name
        assert unit["Unit"]["PartOf"] == "dgx-pixels.target" and unit["Install"]["WantedBy"] == "dgx-pixels.target"
        # ${VAR} in ExecStart: the unit's own Environment= defaults, then the environment file.
        defaults = dict(item.split("=", 1) for item in shlex.split(service.get("Environment", "")))
        variables = {**defaults, **documented}
        argv = [re.sub(r"\$\{(\w+)\}", lambda m: variables[m.group(1)], word) for word in shlex.split(service["ExecStart"])]
        program = Path(argv[0].replace(INSTALL_ROOT, str(ROOT)))
        assert program.is_file() and os.access(program, os.X_OK), f"{name}: {argv[0]} is no program in the checkout"
        if subcommand is None:
            assert program.name == "daphne" and argv[-1] == "dgxpixels.asgi:application"
            assert argv[argv.index("-b") + 1] == "127.0.0.1" and argv[argv.index("-p") + 1] == "8000"
            assert "--proxy-headers" in argv
            pre = shlex.split(service["ExecStartPre"])
            assert pre[1:] == [f"{INSTALL_ROOT}/manage.py", "migrate", "--noinput"], pre
        else:
            assert "ExecStartPre" not in service, f"{name}: only the web unit migrates"
            assert argv[1] == f"{INSTALL_ROOT}/manage.py" and argv[2] == subcommand, argv
            assert subcommand in commands, f"{name}: no manage.py command {subcommand!r}"
            command = load_command_class(commands[subcommand], subcommand)
            command.create_parser("manage.py", subcommand).parse_args(argv[3:])  # its flags parse
            assert "dgx-pixels-web.service" in unit["Unit"]["After"].split(), f"{name}: start after the migration"
    gpu = read_unit(DEPLOY / "dgx-pixels-gpu-worker.service")
    assert gpu["Service"]["KillSignal"] == "SIGTERM" and gpu["Service"]["KillMode"] == "mixed"
    assert int(gpu["Service"]["TimeoutStopSec"]) > float(documented["DGX_STOP_GRACE"]) + 15
    assert "comfyui.service" in gpu["Unit"]["Wants"].split() and "comfyui.service" in gpu["Unit"]["After"].split()
    target = read_unit(DEPLOY / "dgx-pixels.target")
    assert sorted(target["Unit"]["Wants"].split()) == sorted(n for n in SERVICES if "zmq" not in n)
    assert target["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_units(tmp_path):
    (tmp_path / "dgx-pixels.env").write_text("")
    for path in [*DEPLOY.glob("*.service"), DEPLOY / "dgx-pixels.target"]:
        text = path.read_text().replace(INSTALL_ROOT, str(ROOT)).replace("/etc/dgx-pixels/dgx-pixels.env",
                                                                         str(tmp_path / "dgx-pixels.env"))
        (tmp_path / path.name).write_text(text)
    names = sorted(p.name for p in tmp_path.glob("dgx-pixels*") if p.suffix in {".service", ".target"})
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *[f"./{n}" for n in names]], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if "dgx-pixels" in line]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr
