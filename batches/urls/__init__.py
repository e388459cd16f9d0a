"""The dashboard's URLs: the pages where jobs are submitted and watched, and where images are reviewed."""
from batches.urls.comparisons import urlpatterns as comparison_urls
from batches.urls.dashboard import urlpatterns as dashboard_urls
from batches.urls.ops import urlpatterns as ops_urls
from batches.urls.review import urlpatterns as review_urls
from batches.urls.sheets import urlpatterns as sheet_urls
from batches.urls.tokens import urlpatterns as token_urls
from batches.urls.webhooks import urlpatterns as webhook_urls

urlpatterns = dashboard_urls + review_urls + sheet_urls + comparison_urls + token_urls + webhook_urls + ops_urls
