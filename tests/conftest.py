from __future__ import annotations

import os
import tempfile

import pytest
from django.conf import settings as _settings
from django.db import connection
from django_q.conf import Conf as _QConf

from tests.processes import start_qcluster, start_simulator

# DEBUG is off by default, and with DEBUG off every manage.py command and daphne refuse the
# development key (batches/checks.py): the subprocesses tests start inherit this test-only key,
# and this process signs with it too (django-q2 tasks queued here are checked by a qcluster).
os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-key-4f9c2e7a1b8d6e3f0a5c9b2d7e1f4a8c6b3d0e9f2a7c5b1d8e4f")
_settings.SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]
_QConf.SECRET_KEY = _settings.SECRET_KEY  # django-q2 read the key when django.setup() imported it
# The disk guard (DGX_DISK_MIN_FREE_GB, default 5 GB) would hold every worker a test starts on a
# machine with less free space than that; tests/test_health.py sets it for its own worker.
os.environ.setdefault("DGX_DISK_MIN_FREE_GB", "0")
_settings.DISK_MIN_FREE_GB = float(os.environ["DGX_DISK_MIN_FREE_GB"])

# Tests serve static files straight from the app folders (WhiteNoise's finders), never from a
# staticfiles/ that ./scripts/run.sh collected earlier and that may be stale next to the code under
# test: subprocesses get a STATIC_ROOT holding no manifest; this process (whose settings pytest-django
# loaded before this file) looks there too. tests/test_production.py collects its own.
os.environ["DJANGO_STATIC_ROOT"] = os.path.join(tempfile.gettempdir(), "dgxpixels-tests-collect-nothing-here")
os.makedirs(os.environ["DJANGO_STATIC_ROOT"], exist_ok=True)  # empty: WhiteNoise warns about a missing one
_settings.STATIC_ROOT = os.environ["DJANGO_STATIC_ROOT"]
_settings.WHITENOISE_USE_FINDERS = True


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """A test database of this pytest run's own, so two runs on one machine never share a file."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    db.setdefault("TEST", {})
    if db["ENGINE"].endswith("sqlite3"):
        db["TEST"]["NAME"] = os.path.join(tempfile.gettempdir(), f"dgxpixels-test-{os.getpid()}.sqlite3")
    else:
        db["TEST"]["NAME"] = f"test_{db['NAME']}_{os.getpid()}"


@pytest.fixture
def simulator(tmp_path):
    """A real ComfyUI simulator subprocess on a free port; yields its base URL."""
    proc, url = start_simulator(tmp_path)
    yield url
    proc.discard()


@pytest.fixture
def simulator_factory(tmp_path):
    """Start simulators with custom flags: `proc, url = simulator_factory("--step-ms", "250")`."""
    procs = []

    def start(*extra: str, **kwargs):
        proc, url = start_simulator(tmp_path, *extra, **kwargs)
        procs.append(proc)
        return proc, url

    yield start
    for proc in procs:
        proc.discard()


@pytest.fixture
def output_root(tmp_path, settings):
    root = tmp_path / "outputs"
    root.mkdir()
    settings.OUTPUT_ROOT = root
    return root


@pytest.fixture
def worker_env(transactional_db, output_root):
    """Environment for subprocesses (qcluster, CLI) that share this test's database and outputs."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        database_url = "sqlite:///" + str(db["NAME"])  # absolute path: sqlite:////abs/file
    else:
        database_url = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return {"DATABASE_URL": database_url, "OUTPUT_ROOT": str(output_root), "GPU_NODE": "gpu-test"}


@pytest.fixture
def qcluster_factory(tmp_path, worker_env, settings):
    """Start real qclusters: `proc = qcluster_factory(comfyui_url)`; all stopped at teardown."""
    procs = []

    def start(comfyui_url: str, *, name: str = "qcluster", **env):
        settings.COMFYUI_URL = comfyui_url
        proc = start_qcluster(tmp_path, {**worker_env, "COMFYUI_URL": comfyui_url, **env}, name=name)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.discard()


@pytest.fixture
def sprite_worker(tmp_path, worker_env):
    """Start real `manage.py sprite_worker` processes on the test's database: `sprite_worker()`."""
    from tests.processes import manage_proc

    procs = []

    def start():
        proc = manage_proc("sprite_worker", env=worker_env, log_path=tmp_path / "sprite_worker.log").start()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.discard()


@pytest.fixture
def daphne_server(tmp_path, worker_env):
    """A real daphne process on the test database; yields its base URL."""
    from tests.processes import start_daphne

    proc, url = start_daphne(tmp_path, worker_env)
    yield url
    proc.discard()


@pytest.fixture
def session_cookie(transactional_db):
    """Log a user in through Django's session machinery; return (user, cookie header value)."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    def login(username: str = "artist", *, staff: bool = False):
        User = get_user_model()
        user = User.objects.filter(username=username).first() or User.objects.create_user(
            username, password="pw", is_staff=staff)
        client = Client()
        client.force_login(user)
        return user, f"sessionid={client.cookies['sessionid'].value}"

    return login


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """PBKDF2 costs ~0.6 s per user on this machine; tests do not need it to be slow."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- the cast for view tests: an owner, another user, and staff (a file may define its own) ----

@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user("owner", password="pw")


@pytest.fixture
def other(django_user_model):
    return django_user_model.objects.create_user("other", password="pw")


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("boss", password="pw", is_staff=True)
