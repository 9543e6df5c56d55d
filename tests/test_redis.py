"""What only the real Redis can show: idle sockets survive, and several processes share one chat."""

import asyncio
import json

import pytest
from channels.db import database_sync_to_async

from chatsite.settings import redis_channel_layer
from tests.conftest import (
    REDIS_URL,
    eventually,
    live_database_url,
    redis_layer,
    require_service,
)
from tests.live import Browserish, DaphneServer
from tests.test_live_daphne import next_of, open_socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]


@pytest.fixture
def redis(settings):
    require_service("Redis", "127.0.0.1", 6379)
    settings.CHANNEL_LAYERS = redis_layer()


async def test_a_socket_idle_for_longer_than_redis_py_timeout_still_receives(redis, connect, alice, bob):
    """redis-py 8's default 5 s socket timeout would kill the idle receive loop (channels_redis#422)."""
    from messaging.hub import get_hub

    a, b = await connect(alice), await connect(bob)
    await asyncio.sleep(6.5)  # idle on purpose: longer than redis-py's timeout
    await a.send({"Type": "Send", "To": "bob", "Content": "still there?", "Chat": "Private"})
    await b.next_of("Message", Content="still there?")
    await a.next_of("Message", Content="still there?")
    assert (await get_hub()).catchup.delivered == 0, "through the layer, not the hubs' sweep"


@pytest.fixture
def two_servers(transactional_db):
    require_service("Redis", "127.0.0.1", 6379)
    env = {"REDIS_URL": REDIS_URL.rsplit("/", 1)[0] + "/3"}
    servers = [DaphneServer(live_database_url(), extra_env=env).start() for _ in range(2)]
    yield servers
    for server in servers:
        server.stop()


async def test_users_on_two_server_processes_chat_and_see_presence(two_servers):
    one, two = two_servers
    alice, bob = Browserish(one.url), Browserish(two.url)
    await asyncio.to_thread(alice.register, "alice", "a-long-secret-1")
    await asyncio.to_thread(bob.register, "bob", "b-long-secret-2")
    async with await open_socket(one, alice) as a:
        async with await open_socket(two, bob) as b:
            assert (await next_of(a, "Presence", Username="bob"))["Online"] is True
            await a.send(json.dumps({"Type": "Send", "To": "bob", "Content": "across", "Chat": "Private"}))
            assert (await next_of(b, "Message"))["Content"] == "across"
            # bob's second tab on the other process gets his messages too
            async with await open_socket(one, bob) as b2:
                await b.send(json.dumps({"Type": "Send", "To": "alice", "Content": "back", "Chat": "Private"}))
                assert (await next_of(b2, "Message"))["Content"] == "back"
        await next_of(a, "Presence", Username="bob", Online=False)


async def test_a_users_tabs_on_two_processes_share_read_pointers_and_a_ban_closes_both(two_servers, settings):
    from django.contrib.auth import get_user_model

    from accounts.actions import user_ban

    one, two = two_servers
    alice, bob_one = Browserish(one.url), Browserish(one.url)
    await asyncio.to_thread(alice.register, "alice", "a-long-secret-1")
    await asyncio.to_thread(bob_one.register, "bob", "b-long-secret-2")
    async with (
        await open_socket(one, alice) as a,
        await open_socket(one, bob_one) as b1,
        await open_socket(two, bob_one) as b2,
    ):
        await a.send(json.dumps({"Type": "Send", "To": "bob", "Content": "read me", "Chat": "Private"}))
        message = await next_of(b1, "Message")
        assert (await next_of(b2, "Message"))["Id"] == message["Id"]
        await b1.send(json.dumps({"Type": "Read", "Chat": "Private", "To": "alice", "Id": message["Id"]}))
        assert (await next_of(b2, "Read"))["Id"] == message["Id"]
        # A moderator in another process (this one) bans bob: both of his tabs close.
        settings.CHANNEL_LAYERS = {"default": redis_channel_layer(two_servers[0].extra_env["REDIS_URL"])}
        iago = await database_sync_to_async(get_user_model().objects.create_superuser)("iago", "i@x.org", "pw")
        bob = await database_sync_to_async(get_user_model().objects.get)(username="bob")
        await database_sync_to_async(user_ban)(actor=iago, user=bob, reason="test")
        for ws in (b1, b2):
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert ws.close_code == 4003
        await next_of(a, "Presence", Username="bob", Online=False)


async def test_a_redis_that_forgets_every_membership_loses_no_message(redis, connect, alice, bob, monkeypatch):
    """What a Redis restart does to the layer: every group membership is gone, so events for
    this process go nowhere. The hub's sweep delivers them from the database, and its watchdog
    (no heartbeat comes back) joins every group again."""
    import redis.asyncio as aioredis

    from messaging import catchup
    from messaging import hub as hub_module
    from messaging.hub import get_hub

    monkeypatch.setattr(hub_module, "HEARTBEAT_EVERY", 0.05)
    monkeypatch.setattr(catchup, "SWEEP_EVERY", 0.05)
    monkeypatch.setattr(catchup, "SWEEP_LAG", 0.2)
    a = await connect(alice)
    b = await connect(bob)
    await a.send({"Type": "Connect"})
    await a.next_of("State")
    hub = await get_hub()
    client = aioredis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{hub.layer.prefix}:group:*")]
        assert keys, "the layer's memberships are where the test looks for them"
        await client.delete(*keys)
    finally:
        await client.aclose()
    await b.send({"Type": "Send", "Chat": "Private", "To": "alice", "Content": "while Redis forgot us"})
    frame = await a.next_of("Message", Content="while Redis forgot us")
    assert hub.catchup.delivered >= 1, "it came from the database"
    await eventually(lambda: hub.rejoins >= 1 and not hub.deaf)
    delivered = hub.catchup.delivered
    await b.send({"Type": "Send", "Chat": "Private", "To": "alice", "Content": "after"})
    after = await a.next_of("Message", Content="after")
    assert after["Seq"] > frame["Seq"] and hub.catchup.delivered == delivered, "through the layer again"


async def test_logging_out_through_one_process_closes_that_sessions_socket_on_another(two_servers):
    one, two = two_servers
    alice, alice_elsewhere = Browserish(one.url), Browserish(one.url)
    await asyncio.to_thread(alice.register, "alice", "a-long-secret-1")
    await asyncio.to_thread(alice_elsewhere.login, "alice", "a-long-secret-1")
    async with await open_socket(two, alice) as ws, await open_socket(two, alice_elsewhere) as other:
        status, where = await asyncio.to_thread(alice.post_form, "/accounts/logout/", {})
        assert status == 200 and "/accounts/login/" in where
        await asyncio.wait_for(ws.wait_closed(), 5)
        assert ws.close_code == 4001
        await other.send(json.dumps({"Type": "Connect"}))
        await next_of(other, "State")  # the other session's socket stays
