"""The rows are the queue: jobs, their work units (one ComfyUI prompt each), images, events.

State changes are guarded updates (`filter(pk=..., status=OLD).update(...)`, then check the row
count) so they are correct on SQLite and on PostgreSQL with many GPU workers at once.
"""
from batches.models.comparisons import Comparison, Vote
from batches.models.housekeeping import ActionRequest, Event, QueueControl
from batches.models.images import Image
from batches.models.integrations import ApiToken, WebhookDelivery, WebhookEndpoint
from batches.models.jobs import Job, Priority, Unit
from batches.models.nodes import WorkerNode
from batches.models.sheets import SheetExport

__all__ = ["ActionRequest", "ApiToken", "WebhookDelivery", "WebhookEndpoint", "Comparison", "Event", "Image", "Job", "Priority", "QueueControl", "SheetExport", "Unit", "Vote", "WorkerNode"]
