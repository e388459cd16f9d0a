"""`manage.py qcluster`: this node's GPU worker (django-q2's command, with a lease and a clean stop).

It shadows django_q's command of the same name (batches comes before django_q in INSTALLED_APPS).
"""
from __future__ import annotations

import os

from django.conf import settings
from django.core.management.base import CommandError
from django_q.management.commands.qcluster import Command as QClusterCommand

from batches.checks import COMMAND_CHECKS
from batches.gpu_cluster import NodeCluster
from batches.services import node_lease

EXIT_NODE_BUSY = 3  # the launcher does not restart a worker refused for this reason


class Command(QClusterCommand):
    requires_system_checks = COMMAND_CHECKS  # the secret key only (batches/checks.py)
    help = ("Start this node's GPU worker: one django-q2 cluster with one worker feeding COMFYUI_URL. "
            "SIGTERM or SIGINT (to it or its process group) lets the unit on the GPU finish "
            "(at most DGX_STOP_GRACE seconds), then exits. Refuses to start while another worker "
            "serves the same GPU_NODE.")

    def handle(self, *args, **options):
        settings.SECRET_KEY  # noqa: B018 - django-q2 signs tasks with it: fail here, not later
        if options.get("cluster_name"):
            os.environ["Q_CLUSTER_NAME"] = options["cluster_name"]
        try:
            lease = node_lease.acquire(node=settings.GPU_NODE, comfyui_url=settings.COMFYUI_URL)
        except node_lease.NodeBusy as exc:
            raise CommandError(str(exc), returncode=EXIT_NODE_BUSY) from None
        self.stdout.write(f"GPU worker for node {lease.node} (pid {os.getpid()}) feeding {settings.COMFYUI_URL}")
        self.stdout.flush()
        status = NodeCluster(lease, write=self._say).run(run_once=options.get("run_once", False))
        if status:
            raise CommandError("the GPU worker stopped because of the error above", returncode=status)

    def _say(self, message: str) -> None:
        self.stdout.write(message)
        self.stdout.flush()
