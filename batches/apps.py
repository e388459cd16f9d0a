from django.apps import AppConfig


class BatchesConfig(AppConfig):
    name = "batches"
    verbose_name = "Sprite batches"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        from batches import checks  # noqa: F401  (registers the production start-up checks)

        post_spawn.connect(_worker_spawned, dispatch_uid="batches-worker-spawned")


def _worker_spawned(sender, proc_name: str, **kwargs) -> None:
    """When the GPU worker process starts (boot, restart after a crash), nudge it at once.

    It reconciles whatever it had in flight and carries on with the queue, without waiting
    for the next scheduled tick.
    """
    from django.conf import settings

    from batches.gpu_cluster import install_worker_signals
    from batches.models import QueueControl, WorkerNode

    install_worker_signals()
    from batches.tasks import ensure_schedule, wake_workers

    try:
        WorkerNode.register(name=settings.GPU_NODE, comfyui_url=settings.COMFYUI_URL)
        if settings.START_PAUSED:
            QueueControl.set_paused(True, by="DGX_START_PAUSED")
        ensure_schedule()
        wake_workers()
    except Exception:  # never stop the worker from starting
        import logging

        logging.getLogger("batches.tasks").exception("could not nudge the GPU worker at start")
