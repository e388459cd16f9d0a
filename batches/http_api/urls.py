"""/api/v1/: Ninja's URLs, each guarded (body size, JSON 405), then a JSON 404 for anything else."""
from django.urls import URLPattern, re_path

from batches.http_api import api
from batches.http_api.errors import guard, unknown_route

_patterns, _app, app_name = api.urls  # the instance namespace "api-v1" is what Ninja reverses
for _pattern in _patterns:
    assert isinstance(_pattern, URLPattern)
    _pattern.callback = guard(_pattern.callback)

urlpatterns = [*_patterns, re_path(r"^(?P<rest>.*)$", unknown_route)]
