"""The Django admin as a management console: jobs, units, images, GPU nodes, the queue switch and webhooks.

Every action calls the same services as the pages and the CLI (batches.services.control,
batches.services.review); "add job" is the dashboard's JobForm, so it calls job_submit and shows
its field errors. Fields the system writes are read-only, and an edit saves only the fields it
changed: the GPU worker updates the same rows while the page is open.
"""
from batches.admin import comparisons, jobs, nodes, outputs, tokens, webhooks  # noqa: F401  (each registers its ModelAdmins)
