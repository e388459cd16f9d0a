"""The aiohttp side: the PromptServer object, its WebSocket, the Origin check, and start/stop.

Like ComfyUI's server.py, the executor thread never touches a socket: it calls send_sync(),
which hands (event, data, sid) to the event loop, and one publish loop sends them in order.
sid None means every connected socket.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import signal
import socket
import urllib.parse
import uuid
from typing import Any, Callable

import aiohttp
from aiohttp import web

from .config import SimConfig
from .executor import PromptExecutor, Stats, start_worker
from .files import Folders
from .nodes import Catalog, build_registry
from .previews import preview_frame
from .prompt_queue import PromptQueue

log = logging.getLogger("batches.comfyui_sim")

_PREVIEW = object()  # the publish queue's marker for a binary preview frame
SERVER_FEATURES = {"supports_preview_metadata": True, "max_upload_size": 104857600}


class PromptServer:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.folders = Folders.create(str(config.output_directory))
        self.catalog = Catalog(checkpoints=list(config.checkpoints), loras=list(config.loras))
        self.registry = build_registry()
        self.stats = Stats()
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.sockets_metadata: dict[str, dict] = {}
        self.client_id: str | None = None  # the running prompt's client, set by the executor
        self.last_node_id: str | None = None
        self.last_prompt_id: str | None = None
        self.number = 0  # server-wide POST /prompt counter
        self.loop: asyncio.AbstractEventLoop | None = None
        self.messages: asyncio.Queue | None = None
        self.prompt_queue = PromptQueue(self)
        self.executor = PromptExecutor(self, config, self.folders, self.registry, self.catalog, self.stats)

    # --- messages ------------------------------------------------------------------------------

    def get_queue_info(self) -> dict:
        return {"exec_info": {"queue_remaining": self.prompt_queue.get_tasks_remaining()}}

    def send_sync(self, event: str, data: dict, sid: str | None = None) -> None:
        if self.loop is None or self.messages is None:
            return
        self.loop.call_soon_threadsafe(self.messages.put_nowait, (event, data, sid))

    def send_preview(self, image: bytes, metadata: dict, sid: str | None = None) -> None:
        """A binary preview frame, in order with the text messages (ComfyUI queues both alike)."""
        self.send_sync(_PREVIEW, {"image": image, "metadata": metadata}, sid)

    def queue_updated(self) -> None:
        self.send_sync("status", {"status": self.get_queue_info()})

    async def send_bytes(self, image: bytes, metadata: dict, sid: str | None) -> None:
        targets = list(self.sockets.items()) if sid is None else [(sid, self.sockets[sid])] if sid in self.sockets else []
        for target, ws in targets:
            flags = self.sockets_metadata.get(target, {}).get("feature_flags", {})
            frame = preview_frame(image, metadata, with_metadata=bool(flags.get("supports_preview_metadata")))
            try:
                await ws.send_bytes(frame)
            except (aiohttp.ClientError, ConnectionError, RuntimeError) as err:
                log.warning("send error: %s", err)

    async def send_json(self, event: str, data: dict, sid: str | None = None) -> None:
        message = {"type": event, "data": data}
        targets = list(self.sockets.values()) if sid is None else [self.sockets[sid]] if sid in self.sockets else []
        for ws in targets:
            try:
                await ws.send_json(message)
            except (aiohttp.ClientError, ConnectionError, RuntimeError) as err:
                log.warning("send error: %s", err)  # a socket that went away: the event is dropped

    async def publish_loop(self) -> None:
        assert self.messages is not None
        while True:
            event, data, sid = await self.messages.get()
            try:
                if event is _PREVIEW:
                    await self.send_bytes(data["image"], data["metadata"], sid)
                else:
                    await self.send_json(event, data, sid)
            except Exception:  # keep publishing whatever one bad message did
                log.exception("could not publish %s", event)

    # --- WebSocket -----------------------------------------------------------------------------

    async def websocket_handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sid = request.rel_url.query.get("clientId", "")
        if sid:
            self.sockets.pop(sid, None)  # reusing a session id: the newest socket wins
        else:
            sid = uuid.uuid4().hex
        self.sockets[sid] = ws
        self.sockets_metadata[sid] = {"feature_flags": {}}
        try:
            await self.send_json("status", {"status": self.get_queue_info(), "sid": sid}, sid)
            # A client reconnecting mid-run learns which node is executing (no prompt_id, as in ComfyUI).
            if self.client_id == sid and self.last_node_id is not None:
                await self.send_json("executing", {"node": self.last_node_id}, sid)
            first_message = True
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.ERROR:
                    log.warning("ws connection closed with exception %s", ws.exception())
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    try:
                        data = json.loads(msg.data)
                        if first_message and data.get("type") == "feature_flags":
                            self.sockets_metadata[sid]["feature_flags"] = data.get("data", {})
                            await self.send_json("feature_flags", dict(SERVER_FEATURES), sid)
                        first_message = False
                    except json.JSONDecodeError:
                        log.warning("Invalid JSON received from client %s: %s", sid, msg.data)
                    except Exception as e:
                        log.error("Error processing WebSocket message: %s", e)
        finally:
            # ComfyUI pops the id unconditionally: closing an *older* socket with the same clientId
            # unregisters the newer one too. Clients must close the old socket before reconnecting.
            self.sockets.pop(sid, None)
            self.sockets_metadata.pop(sid, None)
        return ws


def is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    loopback = False
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            for _, _, _, _, sockaddr in socket.getaddrinfo(host, None, family, socket.SOCK_STREAM):
                if not ipaddress.ip_address(sockaddr[0]).is_loopback:
                    return loopback
                loopback = True
        except socket.gaierror:
            pass
    return loopback


@web.middleware
async def origin_only_middleware(request: web.Request, handler: Callable) -> web.StreamResponse:
    """ComfyUI's default CSRF guard: on a loopback Host, an Origin naming another host gets 403."""
    if "Host" in request.headers and "Origin" in request.headers:
        host_domain = request.headers["Host"].lower()
        parsed = urllib.parse.urlparse(request.headers["Origin"])
        origin_domain: str | None = parsed.netloc.lower()
        host_parsed = urllib.parse.urlsplit("//" + host_domain)
        loopback = is_loopback(host_parsed.hostname)
        host_cmp: str | None = host_domain
        if parsed.port is None:  # an origin without a port is compared by host name only
            host_cmp = host_parsed.hostname
        if host_parsed.port is None:
            origin_domain = parsed.hostname
        if loopback and host_cmp and origin_domain and host_cmp != origin_domain:
            log.warning("request with non matching host and origin %s != %s, returning 403", host_cmp, origin_domain)
            return web.Response(status=403)
    if request.method == "OPTIONS":
        return web.Response()
    return await handler(request)


def build_app(config: SimConfig) -> web.Application:
    from .routes import add_routes

    server = PromptServer(config)
    app = web.Application(client_max_size=100 * 1024 * 1024, middlewares=[origin_only_middleware])
    app["server"] = server
    add_routes(app, server)

    async def on_startup(app: web.Application) -> None:
        server.loop = asyncio.get_running_loop()
        server.messages = asyncio.Queue()
        app["publisher"] = asyncio.create_task(server.publish_loop())
        app["worker"] = start_worker(server.prompt_queue, server, server.executor)

    async def on_shutdown(app: web.Application) -> None:
        for ws in list(server.sockets.values()):
            await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"Server shutdown")

    async def on_cleanup(app: web.Application) -> None:
        app["worker"][1].set()
        app["publisher"].cancel()
        server.folders.cleanup()  # the temp dir goes at exit, as ComfyUI wipes its own

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    return app


async def serve(config: SimConfig, write: Callable[[str], Any]) -> None:
    """Run until SIGTERM or SIGINT, then close sockets and stop cleanly."""
    app = build_app(config)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    write(f"ComfyUI simulator (v0.3.64 protocol) on http://{config.host}:{config.port}/ "
          f"output={app['server'].folders.output} step_ms={config.step_ms:g} vram_gb={config.vram_gb:g}"
          + (f" vram_used_gb={config.vram_used_gb:g}" if config.vram_used_gb else ""))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        write("ComfyUI simulator stopping")
        await runner.cleanup()
