"""The HTTP JSON API under /api/v1/ (Django Ninja): jobs, images, comparisons, the queue.

Why Ninja: the endpoints' type annotations and pydantic schemas are both the validation and the
OpenAPI document (/api/v1/schema, browsable at /api/v1/docs, served without the internet from
Ninja's own static files), in a small package; DRF would need serializers plus drf-spectacular to
say the same thing twice.

Every endpoint goes through the services (job_requests, control, stats, comparisons, outputs);
authentication is a Bearer token only (auth.py), errors have one shape (errors.py), and each token
has a rate limit shared by every process (throttle.py).
"""
from __future__ import annotations

from ninja import NinjaAPI

from batches.http_api import comparisons, errors, images, jobs, queue
from batches.http_api.auth import TokenAuth

api = NinjaAPI(
    title="DGX Pixels API",
    version="1",
    description=(
        "Queue sprite batches and follow them. Authenticate with `Authorization: Bearer <token>` "
        "(`./dgx api_token USER`, /account/tokens/ or the admin). Every error is "
        '`{"errors": {"<field or __all__>": ["message"]}, "status": N}`. Lists take `page` and '
        "`page_size` (up to 200) and answer `items`, `count`, `next`, `previous`."
    ),
    auth=TokenAuth(),
    urls_namespace="api-v1",
    openapi_url="/schema",
    docs_url="/docs",
)
errors.install(api)
api.add_router("/jobs/", jobs.router)
api.add_router("/images/", images.router)
api.add_router("/comparisons/", comparisons.router)
api.add_router("/", queue.router)
