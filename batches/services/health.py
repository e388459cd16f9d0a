"""Is this installation able to make images? One set of checks for `GET /healthz` and `batch_doctor`.

`health_report()` returns `{"ok": bool, "checks": {name: {"ok": bool, "detail": str, ...}}}`;
`ok` is the AND of every check's `ok`. A failing check carries `fix`: what a person should do.

- database   a cheap query; a locked SQLite database is named as such
- comfyui    GET COMFYUI_URL/system_stats (2 s timeout), and every live node's own view of its
             ComfyUI (`WorkerNode.comfyui_ok`)
- workers    every node whose worker holds its lease beats within DGX_NODE_STALE_SECONDS; at least
             one worker must be running. No node at all FAILS ("no GPU worker has ever run"):
             without a worker nothing is made, and a monitor should say so on a fresh install too.
- disk       free space at OUTPUT_ROOT against DGX_DISK_MIN_FREE_GB, and any node holding for it
- models     the checkpoints the vram table, the workflows and the active jobs name, against the
             ones ComfyUI lists (skipped while ComfyUI does not answer)
- queue      paused or not: informational, never a failure

Nothing secret goes into the report: URLs lose any user name, password and query, paths are
named by their setting (OUTPUT_ROOT), and no error text from the database or ComfyUI that could
carry either is passed on verbatim.
"""
from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from batches.services import disk_guard

COMFYUI_TIMEOUT = 2.0  # seconds for each ComfyUI probe
NODE_CHECK_TIMEOUT = 2.0


def public_url(url: str) -> str:
    """scheme://host[:port]/path of `url`: no user name, password, query or fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(unparsable URL)"
    return f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}"


def _check(ok: bool, detail: str, fix: str = "", **extra) -> dict:
    data = {"ok": ok, "detail": detail, **extra}
    if not ok and fix:
        data["fix"] = fix
    return data


# --- the checks ------------------------------------------------------------------------------

def check_database() -> dict:
    started = time.monotonic()
    try:
        from batches.models import QueueControl

        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        QueueControl.objects.filter(pk=1).exists()  # our own tables answer too (migrated)
    except DatabaseError as exc:
        text = str(exc).lower()
        if "locked" in text or "busy" in text:
            return _check(False, "database is locked: another process holds a long write transaction",
                          "find the process holding it (a stuck manage.py shell or script, a backup copying "
                          "the SQLite file) and stop it; on many GPU nodes use PostgreSQL (DATABASE_URL)",
                          locked=True)
        if "no such table" in text or "does not exist" in text:
            return _check(False, "database answers but its tables are missing", "run ./dgx migrate")
        return _check(False, f"database does not answer ({type(exc).__name__})",
                      "check DATABASE_URL and that the database server runs")
    finally:
        try:
            connection.close_if_unusable_or_obsolete()
        except DatabaseError:
            pass
    return _check(True, f"answered in {(time.monotonic() - started) * 1000:.0f} ms")


def probe_comfyui(url: str, *, timeout: float = COMFYUI_TIMEOUT) -> tuple[bool, str]:
    """(answered, words) for GET url/system_stats."""
    session = requests.Session()
    session.trust_env = False  # ComfyUI is local or on the LAN: never through a proxy
    started = time.monotonic()
    try:
        response = session.get(url.rstrip("/") + "/system_stats", timeout=timeout)
    except requests.Timeout:
        return False, f"no answer within {timeout:g} s"
    except requests.RequestException:
        return False, "connection refused or host unreachable"
    finally:
        session.close()
    if response.status_code != 200:
        return False, f"answered HTTP {response.status_code}"
    try:
        if not isinstance(response.json(), dict):
            raise ValueError
    except ValueError:
        return False, "answered, but not with ComfyUI's /system_stats (is something else on that port?)"
    return True, f"answered in {(time.monotonic() - started) * 1000:.0f} ms"


def check_comfyui(nodes) -> tuple[dict, bool]:
    """The check, and whether COMFYUI_URL answered (the models check needs it)."""
    url = public_url(settings.COMFYUI_URL)
    answered, words = probe_comfyui(settings.COMFYUI_URL)
    down = [n for n in nodes if n["live"] and not n["comfyui_ok"]]
    problems = [] if answered else [f"ComfyUI at {url}: {words}"]
    problems += [f"node {n['name']} cannot reach its ComfyUI at {n['comfyui_url']}" for n in down]
    if problems:
        return _check(False, "; ".join(problems),
                      f"start ComfyUI (on this box: the service that runs it, or ./scripts/run.sh, which "
                      f"starts the simulator when none answers), or set COMFYUI_URL to where it listens "
                      f"(now {url}); units wait and resume by themselves once it answers",
                      url=url), answered
    return _check(True, f"ComfyUI at {url} {words}", url=url), answered


def node_rows(now=None) -> list[dict]:
    from batches.models import WorkerNode

    now = now or timezone.now()
    stale = timedelta(seconds=settings.NODE_STALE_SECONDS)
    rows = []
    for node in WorkerNode.objects.order_by("name"):
        age = (now - node.heartbeat_at).total_seconds() if node.heartbeat_at else None
        running = bool(node.worker_id)  # holds its lease: a qcluster serves it (or was killed)
        beating = age is not None and age <= stale.total_seconds()
        rows.append({
            "name": node.name, "comfyui_url": public_url(node.comfyui_url), "comfyui_ok": node.comfyui_ok,
            "heartbeat_age_s": round(age, 1) if age is not None else None,
            "worker": running, "live": running and beating, "stale": running and not beating,
            "hold_reason": node.hold_reason, "disk_free": node.disk_free,
            "vram_free": node.vram_free, "vram_total": node.vram_total, "images_made": node.images_made,
        })
    return rows


WORKER_FIX = ("start the GPU worker: ./dgx qcluster (or systemctl start dgx-pixels-gpu-worker; "
              "./scripts/run.sh starts one too)")


def check_workers(nodes: list[dict]) -> dict:
    listed = [{k: n[k] for k in ("name", "live", "heartbeat_age_s", "comfyui_ok", "hold_reason")} for n in nodes]
    if not nodes:
        return _check(False, "no GPU worker has ever run here", WORKER_FIX, nodes=listed)
    stale = [n for n in nodes if n["stale"]]
    live = [n for n in nodes if n["live"]]
    limit = f"{settings.NODE_STALE_SECONDS:g} s"
    if stale:
        words = ", ".join(f"{n['name']} (last heartbeat {n['heartbeat_age_s']:.0f} s ago)" for n in stale)
        return _check(False, f"worker stopped beating (over {limit}): {words}",
                      f"the worker was killed or hangs: {WORKER_FIX}; its units are reclaimed by "
                      f"another node or by the restarted worker", nodes=listed)
    if not live:
        names = ", ".join(n["name"] for n in nodes)
        return _check(False, f"no GPU worker is running (known nodes: {names})", WORKER_FIX, nodes=listed)
    words = ", ".join(f"{n['name']} ({n['heartbeat_age_s']:.0f} s ago)" for n in live)
    return _check(True, f"{len(live)} GPU worker{'s' * (len(live) != 1)} beating: {words}", nodes=listed)


def check_disk(nodes: list[dict]) -> dict:
    state = disk_guard.check()
    limit = f"DGX_DISK_MIN_FREE_GB={settings.DISK_MIN_FREE_GB:g}"
    fix = ("free space on the OUTPUT_ROOT filesystem (./dgx batch_cleanup --older-than 30 --dry-run "
           "shows what it would delete), or lower " + "DGX_DISK_MIN_FREE_GB; the worker resumes by itself")
    held = [n for n in nodes if n["live"] and n["hold_reason"]]
    extra = {"free_bytes": state.free, "min_free_bytes": state.minimum, "holding": [n["name"] for n in held]}
    if state.free is None:
        return _check(False, "cannot read the free space at OUTPUT_ROOT", "check that OUTPUT_ROOT exists and "
                      "is mounted", **extra)
    words = f"{state.free / disk_guard.GB:.1f} GB free at OUTPUT_ROOT ({limit})"
    if state.low:
        return _check(False, f"{words}: below the limit, the GPU worker claims no new unit", fix, **extra)
    if held:
        names = "; ".join(f"{n['name']}: {n['hold_reason']}" for n in held)
        return _check(False, f"{words}, but holding: {names}", fix, **extra)
    return _check(True, words, **extra)


def _wanted_checkpoints() -> dict[str, list[str]]:
    """checkpoint -> who names it: the vram table, each workflow, the active jobs."""
    from batches.models import Job, Unit
    from batches.profiles import load_profiles
    from batches.services.submission import _workflow_checkpoint
    from batches.workflows import list_workflows, load_workflow

    wanted: dict[str, list[str]] = {}
    try:
        model = load_profiles().vram_model
        if model:
            wanted.setdefault(model, []).append("the vram table of the profiles file")
    except Exception:  # a broken profiles file is reported where it is loaded
        pass
    for name in list_workflows():
        try:
            ckpt = _workflow_checkpoint(load_workflow(name).graph)
        except Exception:
            continue
        if ckpt:
            wanted.setdefault(ckpt, []).append(f"workflow {name}")
    active = (Unit.objects.filter(status__in=Unit.OPEN, job__status__in=Job.ACTIVE).exclude(checkpoint="")
              .values_list("checkpoint", "job_id").distinct()[:200])
    for ckpt, job_id in active:
        who = wanted.setdefault(ckpt, [])
        if len(who) < 5:
            who.append(f"job {job_id}")
    return wanted


def check_models(answered: bool) -> dict:
    if not answered:
        return _check(True, "not checked: ComfyUI does not answer", skipped=True)
    from batches.comfyui import ComfyUIClient, ComfyUIError

    client = ComfyUIClient(settings.COMFYUI_URL, timeout=NODE_CHECK_TIMEOUT, retries=0)
    try:
        have = set(client.checkpoints())
    except ComfyUIError:
        return _check(True, "not checked: ComfyUI did not list its checkpoints", skipped=True)
    finally:
        client.close()
    wanted = _wanted_checkpoints()
    missing = {ckpt: who for ckpt, who in wanted.items() if ckpt not in have}
    if missing:
        words = "; ".join(f"{ckpt} (named by {', '.join(who)})" for ckpt, who in sorted(missing.items()))
        return _check(False, f"ComfyUI does not have checkpoint{'s' * (len(missing) != 1)}: {words}",
                      "put the file in ComfyUI's models/checkpoints folder and refresh ComfyUI, or change "
                      "the name in profiles/batch_profiles.yaml (vram: model), the workflow or the job",
                      missing=sorted(missing))
    return _check(True, f"ComfyUI has all {len(wanted)} checkpoint{'s' * (len(wanted) != 1)} named",
                  checkpoints=sorted(wanted))


def check_queue() -> dict:
    from batches.models import QueueControl

    row = QueueControl.objects.filter(pk=1).first()
    if row and row.paused:
        by = f" by {row.paused_by}" if row.paused_by else ""
        return _check(True, f"paused{by} (informational): nothing new starts until ./dgx batch_queue --resume",
                      paused=True)
    return _check(True, "running", paused=False)


# --- the report -------------------------------------------------------------------------------

def health_report() -> dict:
    checks: dict[str, dict] = {"database": check_database()}
    if checks["database"]["ok"]:
        try:
            nodes = node_rows()
        except DatabaseError:
            nodes = []
        checks["comfyui"], answered = check_comfyui(nodes)
        checks["workers"] = check_workers(nodes)
        checks["disk"] = check_disk(nodes)
        checks["models"] = check_models(answered)
        checks["queue"] = check_queue()
    else:  # without the rows only ComfyUI and the disk can be asked
        checks["comfyui"], _ = check_comfyui([])
        checks["disk"] = check_disk([])
    return {"ok": all(c["ok"] for c in checks.values()), "checks": checks}
