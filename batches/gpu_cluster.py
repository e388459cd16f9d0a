"""The qcluster of one GPU node: django-q2's cluster with a stop that waits for the GPU, and a lease.

django-q2 stops a cluster by SIGTERM to its leader only; SIGTERM to the whole process group (what
systemd and most supervisors send) killed the sentinel and the worker mid-unit and left the leader
hung on the dead sentinel's lock (STACK-NOTES). Here every process of the cluster treats SIGTERM
and SIGINT as one request: the leader asks the worker through a shared flag to claim nothing new,
take back the unit it sent ahead and finish (or hand back) the unit on the GPU within
DGX_STOP_GRACE seconds, then stops the cluster as django-q2 does. If that has not happened
DGX_STOP_GRACE + 15 s later, the leader kills what is left and exits.

While it runs, the leader renews the node's lease (one worker per node) and nudges its worker
when another node's units went stale, so they are reclaimed within DGX_NODE_STALE_SECONDS.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time

import django_q.cluster
from django import db
from django.conf import settings
from django_q.cluster import Cluster, Sentinel

from batches.services import node_lease, reclaim, stopping

log = logging.getLogger("batches.cluster")

BEAT_EVERY = 2.0  # seconds between lease renewals (and looks for stale units of other nodes)
HARD_STOP_MARGIN = 15.0  # seconds past DGX_STOP_GRACE before the leader kills what is left


class GracefulSentinel(Sentinel):
    """django-q2's sentinel, deaf to SIGTERM: the leader stops it through the stop event.

    Its children (pusher, monitor, worker) inherit the deaf ear; the worker installs its own
    handler when it spawns (see `install_worker_signals`).
    """

    def start(self):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        super().start()


def install_worker_signals() -> None:
    """In the worker process: SIGTERM or SIGINT asks for a graceful stop instead of killing it."""
    def ask(signum, frame):
        stopping.request()

    signal.signal(signal.SIGTERM, ask)
    signal.signal(signal.SIGINT, ask)


class NodeCluster:
    """Run one node's django-q2 cluster under `lease` until a signal, a lost lease or a crash."""

    def __init__(self, lease: node_lease.Lease, *, write=print):
        self.lease = lease
        self.write = write
        self.signalled: int | None = None

    def run(self, *, run_once: bool = False) -> int:
        stopping.prepare()
        # django-q2 has no hook for the sentinel class; Cluster.start() looks the name up here.
        django_q.cluster.Sentinel = GracefulSentinel
        cluster = Cluster()
        signal.signal(signal.SIGTERM, self._on_signal)  # replaces Cluster's own handlers
        signal.signal(signal.SIGINT, self._on_signal)
        db.connections.close_all()  # the sentinel is forked next: it must not share our connection
        cluster.start()
        status = 0
        if not run_once:
            status = self._watch(cluster)
        self._stop(cluster)
        node_lease.release(self.lease)
        db.connections.close_all()
        return status

    def _on_signal(self, signum, frame) -> None:
        # Only flags here: a signal handler must not take locks the interrupted code may hold.
        stopping.request()
        self.signalled = signum

    def _watch(self, cluster: Cluster) -> int:
        last_beat = 0.0
        while self.signalled is None:
            if not cluster.sentinel.is_alive():
                self.write(f"GPU worker of node {self.lease.node}: django-q's sentinel died "
                           f"(exit code {cluster.sentinel.exitcode}); stopping.")
                return 1
            now = time.monotonic()
            if now - last_beat >= BEAT_EVERY:
                last_beat = now
                if not self._beat():
                    return 1
            time.sleep(0.2)
        name = signal.Signals(self.signalled).name
        self.write(f"GPU worker of node {self.lease.node}: {name} received; claiming nothing new, "
                   f"finishing the unit on the GPU (at most {settings.STOP_GRACE:.0f}s), then exiting.")
        return 0

    def _beat(self) -> bool:
        try:
            if not node_lease.renew(self.lease):
                self.write(f"GPU worker of node {self.lease.node}: another worker took this node over; stopping.")
                stopping.request()
                return False
            if reclaim.stale_units_exist(exclude_node=self.lease.node) or reclaim.jobs_left_open_exist():
                from batches.tasks import wake_node

                wake_node(self.lease.node)
        except db.Error as exc:  # the database is away for a moment: the worker itself copes
            log.warning("could not renew the lease of %s: %s", self.lease.node, exc)
            db.connections.close_all()
        return True

    def _stop(self, cluster: Cluster) -> None:
        stopping.request()
        deadline = settings.STOP_GRACE + HARD_STOP_MARGIN
        watchdog = threading.Timer(deadline, self._hard_stop, args=(cluster, deadline))
        watchdog.daemon = True
        watchdog.start()
        try:
            cluster.stop()
        finally:
            watchdog.cancel()

    def _hard_stop(self, cluster: Cluster, waited: float) -> None:
        self.write(f"GPU worker of node {self.lease.node}: not stopped after {waited:.0f}s; killing its "
                   f"processes (its units in flight are reconciled on the next start).")
        for pid in descendants(os.getpid()):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            node_lease.release(self.lease)
        finally:
            os._exit(1)


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, read from /proc (Linux); children first."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found
