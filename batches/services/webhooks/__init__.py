"""Webhooks: signed JSON POSTs when a job ends (and, if asked, as it progresses), delivered with
retries by `manage.py webhook_worker`, off the GPU worker's path.

- targets.py   which URLs may be targets (http(s); internal addresses only if allow-listed)
- signing.py   X-DGX-Signature: sign, verify_signature (for receivers and tests)
- events.py    Event rows (job_finished, job_progress) -> WebhookDelivery rows, idempotently
- delivery.py  claim, send, record, back off; "Send test" and "Redeliver"
- worker.py    the loop the command runs
"""
from batches.services.webhooks.delivery import (body_of, deliver_due, job_deliveries, queue_ping, redeliver,
                                                send)
from batches.services.webhooks.events import EventTail, deliveries_for, ingest
from batches.services.webhooks.signing import sign, signing_key, verify_signature
from batches.services.webhooks.targets import url_problem

__all__ = ["EventTail", "body_of", "deliver_due", "deliveries_for", "ingest", "job_deliveries", "queue_ping",
           "redeliver", "send", "sign", "signing_key", "url_problem", "verify_signature"]
