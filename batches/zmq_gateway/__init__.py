"""The ZeroMQ gateway: the queue for programs that speak ZeroMQ rather than HTTP.

One process (`manage.py zmq_gateway`) serves two sockets:

- requests (REQ clients; a ROUTER socket here, so that every message, however broken, gets a
  reply): submit, status, cancel, list, ping, one JSON object per message (protocol.py);
- progress (PUB): every stored Event as the browser receives it, as two-part messages
  [topic, json] with topics "queue" (all events) and "job.<id>" (that job's events).

It calls the same services as the form, the CLI and the HTTP API (batches.services.job_requests),
so validation, quotas and ownership are the same at every door. security.py decides where it may
bind; server.py owns the sockets and the loop.
"""
