"""Requests whose client goes away before the answer starts are cancelled, and with them the
statement they run in the database.

``CancelOnDisconnect`` lets a request's handler run undisturbed for WATCH_AFTER_S (most
answer sooner, and pay nothing); after that, a watcher listens for the client's
disconnect. When the client leaves before the response has started, the handler is
cancelled: asyncpg then asks the server to cancel the running statement, and the
transaction rolls back. Once the response has started, the handler runs to its end (a
streamed answer notices the disconnect itself).
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

WATCH_AFTER_S = 0.25
"""How long a request runs before its client's disconnect is watched for."""
CLIENT_CLOSED = 499
"""The status counted for a request its client abandoned (nginx's "client closed
request"); nobody receives it."""
DISCONNECT: Message = {"type": "http.disconnect"}


class _Relay:
    """Stands between a request's handler and the server: the handler reads the client's
    messages straight from the server until the watcher starts, and from the watcher after
    (each body chunk once the handler has taken the one before, so uploads keep their
    back-pressure)."""

    def __init__(self, receive: Receive, send: Send, handler: asyncio.Task) -> None:
        self._receive = receive
        self._send = send
        self._handler = handler
        self._messages: asyncio.Queue[Message] | None = None
        self._watcher: asyncio.Task | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._reading = False
        self.disconnected = False
        self.started = False
        self.abandoned = False

    async def receive(self) -> Message:
        """The handler's ``receive``: the client's next message."""
        if self.disconnected and (self._messages is None or self._messages.empty()):
            return DISCONNECT
        if self._messages is None:  # not watching yet: straight from the server
            self._reading = True
            try:
                message = await self._receive()
            finally:
                self._reading = False
            self.disconnected = message["type"] == "http.disconnect"
            return message
        message = await self._messages.get()
        self._messages.task_done()
        return message

    async def send(self, message: Message) -> None:
        """The handler's ``send``."""
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)

    def arm(self) -> None:
        """Start the watcher in WATCH_AFTER_S."""
        self._timer = asyncio.get_running_loop().call_later(WATCH_AFTER_S, self._start)

    def disarm(self) -> None:
        """Stop watching (the handler is done)."""
        if self._timer is not None:
            self._timer.cancel()
        if self._watcher is not None:
            self._watcher.cancel()

    def _start(self) -> None:
        """Start the watcher, unless the response has started or the client is gone; while
        the handler reads the body itself, try again WATCH_AFTER_S later."""
        if self.started or self.disconnected:
            return
        if self._reading:
            self.arm()
            return
        self._messages = asyncio.Queue()
        self._watcher = asyncio.get_running_loop().create_task(self._watch(self._messages))

    async def _watch(self, messages: asyncio.Queue[Message]) -> None:
        while not self.disconnected:
            message = await self._receive()
            self.disconnected = message["type"] == "http.disconnect"
            await messages.put(message)
            if message.get("more_body", False):
                await messages.join()
        if not self.started:
            self.abandoned = True
            self._handler.cancel()


class CancelOnDisconnect:
    """ASGI middleware that cancels an HTTP request when its client disconnects before the
    response starts (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        handler = asyncio.current_task()
        assert handler is not None
        relay = _Relay(receive, send, handler)
        relay.arm()
        try:
            await self.app(scope, relay.receive, relay.send)
        except asyncio.CancelledError:
            if not relay.abandoned:
                raise
            handler.uncancel()
            await send({"type": "http.response.start", "status": CLIENT_CLOSED})
            await send({"type": "http.response.body", "body": b""})
        finally:
            relay.disarm()
