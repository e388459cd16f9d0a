from django.urls import path, re_path

from batches import consumers

websocket_urlpatterns = [
    path("ws/queue/", consumers.QueueConsumer.as_asgi()),
    path("ws/jobs/<int:job_id>/", consumers.JobConsumer.as_asgi()),
    # Last: any other path is closed with 4404; without it the router raises and daphne answers 500.
    re_path(r"", consumers.NoRouteConsumer.as_asgi()),
]
