"""ASGI entry point: HTTP through Django, WebSockets through Channels (served by daphne)."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dgxpixels.settings")
django_asgi_app = get_asgi_application()

# daphne runs no system checks: refuse here, as `manage.py check` does, to serve with DEBUG off
# on the development secret key or a short one (the message names DJANGO_SECRET_KEY).
from django.conf import settings  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402

from batches.checks import secret_key_problem  # noqa: E402

if (_problem := secret_key_problem(settings)) is not None:
    raise ImproperlyConfigured(_problem)

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up first)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from batches.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
