"""A real Daphne process and real WebSocket clients, as a browser would use them."""

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.live import Browserish

pytestmark = pytest.mark.django_db(transaction=True)


async def open_socket(server, browser: Browserish):
    return await connect(
        server.url.replace("http", "ws") + "/ws/chat/",
        origin=server.url,
        additional_headers={"Cookie": browser.session_header},
    )


async def next_of(ws, type_: str, **fields) -> dict:
    """The next frame of `type_` carrying `fields`, skipping others (presence of others, ...)."""
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if frame["Type"] == type_ and all(frame.get(k) == v for k, v in fields.items()):
            return frame


async def test_two_users_chat_through_a_real_daphne(daphne_server):
    alice, bob = Browserish(daphne_server.url), Browserish(daphne_server.url)
    await asyncio.to_thread(alice.register, "alice", "a-long-secret-1")
    await asyncio.to_thread(bob.register, "bob", "b-long-secret-2")
    async with await open_socket(daphne_server, alice) as a, await open_socket(daphne_server, bob) as b:
        await a.send(json.dumps({"Type": "Connect", "Username": "alice"}))
        state = await next_of(a, "State")
        assert {u["Username"]: u["Online"] for u in state["Users"]}["bob"] is True
        await a.send(json.dumps({"Type": "Send", "From": "alice", "To": "bob", "Content": "hi 👋", "Chat": "Private"}))
        received = await next_of(b, "Message")
        assert (received["From"], received["Content"]) == ("alice", "hi 👋")
        await b.send(json.dumps({"Type": "Create", "Name": "Duo", "List": ["alice"]}))
        assert (await next_of(a, "Group"))["Event"] == "Created"
        await b.send(json.dumps({"Type": "Send", "To": "Duo", "Content": "group hi", "Chat": "Group"}))
        assert (await next_of(a, "Message"))["Content"] == "group hi"


async def test_handshake_without_session_or_with_foreign_origin_is_refused(daphne_server):
    url = daphne_server.url.replace("http", "ws") + "/ws/chat/"
    with pytest.raises(InvalidStatus):
        await connect(url, origin=daphne_server.url)
    alice = Browserish(daphne_server.url)
    await asyncio.to_thread(alice.register, "alice", "a-long-secret-1")
    with pytest.raises(InvalidStatus):
        await connect(url, origin="http://evil.example", additional_headers={"Cookie": alice.session_header})


async def test_an_image_over_the_limit_gets_too_large_not_a_dead_socket(daphne_server):
    """Daphne drops messages over 1 MiB unless told otherwise; `make run` and this server raise both limits."""
    import base64
    import os

    alice = Browserish(daphne_server.url)
    await asyncio.to_thread(alice.register, "alice", "a-long-secret-1")
    content = "data:image/png;base64," + base64.b64encode(os.urandom(6_000_000)).decode()
    async with await open_socket(daphne_server, alice) as a:
        await a.send(json.dumps({"Type": "Send", "To": "alice", "Chat": "Private", "Content": content, "is_image": 1}))
        error = await next_of(a, "Error")
        assert error["Code"] == "too_large" and "5.0 MB" in error["Detail"]
        await a.send(json.dumps({"Type": "Connect"}))
        assert (await next_of(a, "State"))["User"] == "alice"
