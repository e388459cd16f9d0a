"""The gateway's sockets and its one loop: answer requests, publish new events, stop on a signal.

Requests arrive on a ROUTER socket, not REP. For a REQ client the two are the same (the ROUTER
keeps the envelope and replies to it), but REP hides what went wrong: a multi-part message or an
over-long frame would leave the client without a reply, stuck for good. With ROUTER every
message up to TRANSPORT_LIMIT gets a reply, an error one when it breaks the protocol (requests
are limited to protocol.MAX_REQUEST_BYTES). Only a frame over TRANSPORT_LIMIT is cut by libzmq
(ZMQ_MAXMSGSIZE) before we see it: its connection is dropped and the client sees no reply (a REQ
client should set a receive timeout, see README); the limit keeps a client from making the
gateway hold an arbitrary amount of memory.

Events: the gateway tails the Event table by id every POLL_SECONDS, from the newest id at
start-up, and publishes each event as the browser receives it (events.frame of one event:
{"id", "kind", "job", "data", "at"}) under "queue" and, for a job's events, "job.<id>".
PUB drops messages for a subscriber that falls more than PUB_HWM behind, as ZeroMQ does; a
client that must not miss anything asks for status after it (re)subscribes.
"""
from __future__ import annotations

import logging
import signal
import time

import zmq
from django.db import close_old_connections

from batches.services.events import frame
from batches.zmq_gateway import handlers, protocol, security

log = logging.getLogger("batches.zmq_gateway")

POLL_SECONDS = 0.05
TAIL_BATCH = 500  # events per query; a burst larger than this is sent over a few ticks
TRANSPORT_LIMIT = 16 * 1024 * 1024  # bytes; larger frames are cut by libzmq (see the docstring)
PUB_HWM = 10_000  # messages queued per subscriber before ZeroMQ drops
REQUESTS_PER_TICK = 100  # answered before the event tail gets its turn again
RESYNC_TICKS = 20  # idle ticks between checks that the event ids were not renumbered


def split_envelope(frames: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """(routing envelope, request frames) of a message a ROUTER received.

    A REQ client's message arrives as [identity, b"", request...]; a DEALER may leave out the
    empty delimiter, and its reply then goes back without one too.
    """
    for i in range(1, len(frames)):
        if frames[i] == b"":
            return frames[:i + 1], frames[i + 1:]
    return frames[:1], frames[1:]


def topics_for(event) -> list[bytes]:
    topics = [b"queue"]
    if event.job_id:
        topics.append(f"job.{event.job_id}".encode())
    return topics


class Gateway:
    def __init__(self, *, rep: str, pub: str, config: handlers.Config, curve: security.Curve | None = None):
        self.rep_address, self.pub_address, self.config, self.curve = rep, pub, config, curve
        self.stopping = False
        self.last_id = self.idle_ticks = 0
        self.context = self.router = self.publisher = self.auth = None

    # --- life cycle ----------------------------------------------------------------------------

    def bind(self) -> tuple[str, str]:
        """Open and bind both sockets; returns the addresses bound (a "*" port resolved)."""
        self.context = zmq.Context()
        self.router = self.context.socket(zmq.ROUTER)
        self.publisher = self.context.socket(zmq.PUB)
        for sock in (self.router, self.publisher):
            sock.linger = 0
        self.router.setsockopt(zmq.MAXMSGSIZE, TRANSPORT_LIMIT)
        self.publisher.sndhwm = PUB_HWM
        if self.curve is not None:
            self.auth = security.apply_curve(self.context, (self.router, self.publisher), self.curve)
        for flag, sock, address in (("--rep", self.router, self.rep_address), ("--pub", self.publisher, self.pub_address)):
            try:
                sock.bind(address)
            except zmq.ZMQError as exc:
                self.close()
                raise security.SecurityError(f"{flag}: cannot bind {address} ({exc}); choose a free "
                                             "address such as tcp://127.0.0.1:5555") from None
        self.last_id = self._newest_event_id()
        return (self.router.last_endpoint.decode(), self.publisher.last_endpoint.decode())

    def close(self) -> None:
        for sock in (self.router, self.publisher):
            if sock is not None:
                sock.close(linger=0)
        if self.auth is not None:
            self.auth.stop()
        if self.context is not None:
            self.context.term()
        self.context = self.router = self.publisher = self.auth = None

    def stop(self, *_args) -> None:
        self.stopping = True

    def serve_forever(self) -> None:
        """Run until SIGTERM or SIGINT (or stop()); the sockets are closed on the way out."""
        previous = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        next_tail = 0.0
        try:
            while not self.stopping:
                wait_ms = max(0, int((next_tail - time.monotonic()) * 1000))
                if dict(poller.poll(wait_ms)).get(self.router):
                    self._answer_waiting()
                if time.monotonic() >= next_tail:
                    more = self.tail_events()
                    next_tail = time.monotonic() + (0 if more else POLL_SECONDS)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.close()

    # --- requests ------------------------------------------------------------------------------

    def _answer_waiting(self) -> None:
        for _ in range(REQUESTS_PER_TICK):
            try:
                frames = self.router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            envelope, body = split_envelope(frames)
            reply = handlers.handle(body, self.config)
            try:
                self.router.send_multipart([*envelope, protocol.encode(reply)])
            except zmq.ZMQError as exc:  # the client went away; nothing to tell it
                log.info("zmq_gateway: could not send a reply (%s)", exc)

    # --- events --------------------------------------------------------------------------------

    def _newest_event_id(self) -> int:
        from batches.models import Event

        try:
            return Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
        finally:
            close_old_connections()

    def tail_events(self) -> bool:
        """Publish the events stored since the last call; True when more may be waiting."""
        from batches.models import Event

        try:
            close_old_connections()
            events = list(Event.objects.filter(id__gt=self.last_id).order_by("id")[:TAIL_BATCH])
            self.idle_ticks = 0 if events else self.idle_ticks + 1
            if self.idle_ticks % RESYNC_TICKS == RESYNC_TICKS - 1:
                # Ids only grow, unless the table was emptied and renumbered (a restore, a flush):
                # then follow from its newest row rather than wait for ids past the old ones.
                self.last_id = min(self.last_id, self._newest_event_id())
        except Exception:  # the database is away: the events stay stored, we catch up later
            log.exception("zmq_gateway: could not read events; retrying")
            close_old_connections()
            time.sleep(1)
            return False
        for event in events:
            text = frame([event.as_message()])["text"].encode("utf-8")
            for topic in topics_for(event):
                try:
                    self.publisher.send_multipart([topic, text], zmq.NOBLOCK)
                except zmq.Again:  # PUB does not block; kept for transports that might
                    pass
            self.last_id = event.pk
        return len(events) == TAIL_BATCH
