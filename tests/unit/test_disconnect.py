"""CancelOnDisconnect at the ASGI level: a client that leaves before the answer starts
cancels its handler; bodies reach the handler whole and in order whenever the watcher
starts; an answer already started runs to its end. (Its effect on a running statement is
tested against PostgreSQL in tests/api/test_timeouts.py.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from starlette.types import Message, Receive, Scope, Send

from spatial_api.disconnect import CLIENT_CLOSED, WATCH_AFTER_S, CancelOnDisconnect

SCOPE: Scope = {"type": "http", "method": "GET", "path": "/"}


class Client:
    """The server side of one request: the messages a client sends, then a disconnect
    when ``leave`` is set; and what the application sent back. It fails the test if two
    readers wait on it at once."""

    def __init__(self, body: list[bytes] | None = None) -> None:
        chunks = body or [b""]
        self.messages: list[Message] = [
            {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
            for i, c in enumerate(chunks)
        ]
        self.leave = asyncio.Event()
        self.sent: list[Message] = []
        self.waiting = 0

    async def receive(self) -> Message:
        assert self.waiting == 0, "two readers of receive at once"
        if self.messages:
            return self.messages.pop(0)
        self.waiting += 1
        try:
            await self.leave.wait()
        finally:
            self.waiting -= 1
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.sent.append(message)


def run(app: Callable[[Scope, Receive, Send], Awaitable[None]], client: Client) -> asyncio.Task:
    """The wrapped application serving ``client``, as a task."""
    return asyncio.get_running_loop().create_task(
        CancelOnDisconnect(app)(SCOPE, client.receive, client.send)
    )


def test_a_client_leaving_before_the_answer_cancels_the_handler() -> None:
    seen: list[str] = []

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def scenario() -> float:
        client = Client()
        task = run(slow, client)
        await asyncio.sleep(WATCH_AFTER_S + 0.2)
        client.leave.set()
        left = time.monotonic()
        await asyncio.wait_for(task, 5)
        assert client.sent[0] == {"type": "http.response.start", "status": CLIENT_CLOSED}
        return time.monotonic() - left

    assert asyncio.run(scenario()) < 0.5
    assert seen == ["cancelled"]


def test_a_body_arrives_whole_and_in_order_across_the_watchers_start() -> None:
    chunks = [b"one ", b"two ", b"three"]

    async def echo(scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            await asyncio.sleep(WATCH_AFTER_S * 0.6)  # the watcher starts mid-upload
            message = await receive()
            body += message["body"]
            if not message["more_body"]:
                break
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": body})

    async def scenario() -> Client:
        client = Client(chunks)
        await asyncio.wait_for(run(echo, client), 5)
        return client

    sent = asyncio.run(scenario()).sent
    assert [m.get("status") for m in sent] == [200, None]
    assert sent[1]["body"] == b"".join(chunks)


def test_an_answer_already_started_runs_to_its_end() -> None:
    async def streaming(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200})
        await asyncio.sleep(WATCH_AFTER_S + 0.3)
        await send({"type": "http.response.body", "body": b"done"})

    async def scenario() -> Client:
        client = Client()
        task = run(streaming, client)
        await asyncio.sleep(WATCH_AFTER_S + 0.1)
        client.leave.set()
        await asyncio.wait_for(task, 5)
        return client

    sent = asyncio.run(scenario()).sent
    assert sent[-1] == {"type": "http.response.body", "body": b"done"}


def test_a_fast_answer_leaves_nobody_reading() -> None:
    async def reads_twice(scope: Scope, receive: Receive, send: Send) -> None:
        first = await receive()
        assert first["type"] == "http.request"
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body", "body": b""})

    async def scenario() -> Client:
        client = Client()
        await asyncio.wait_for(run(reads_twice, client), 5)
        await asyncio.sleep(WATCH_AFTER_S + 0.1)
        assert client.waiting == 0, "nobody should be left reading"
        return client

    assert asyncio.run(scenario()).sent[0]["status"] == 204


def test_cancellation_from_outside_is_not_swallowed() -> None:
    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(30)

    async def scenario() -> bool:
        task = run(slow, Client())
        await asyncio.sleep(WATCH_AFTER_S + 0.1)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return True
        return False

    assert asyncio.run(scenario())
