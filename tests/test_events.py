"""`run_action`: the one way async code runs an action and publishes what it committed."""

from __future__ import annotations

import threading

import pytest
from channels.layers import get_channel_layer
from django.db import transaction

from chatsite.errors import ChatError
from messaging import actions, events

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def listener(settings):
    """A channel in alice's and bob's user groups, on a fresh in-memory layer."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    layer = get_channel_layer()
    channel = await layer.new_channel()
    return layer, channel


async def test_it_runs_the_action_and_publishes_what_it_committed(listener, alice, bob):
    layer, channel = listener
    await layer.group_add(events.user_group(bob.pk), channel)
    message, created = await events.run_action(
        actions.message_send, sender=alice, chat="Private", to="bob", content="hi"
    )
    assert created
    event = await layer.receive(channel)
    assert event["group"] == events.user_group(bob.pk) and f'"Id":{message.pk}' in event["text"]


async def test_what_was_committed_goes_out_even_when_the_action_then_fails(listener, alice, bob):
    layer, channel = listener
    await layer.group_add(events.user_group(bob.pk), channel)

    def send_then_refuse(**kwargs):
        actions.message_send(sender=alice, chat="Private", to="bob", content="kept")
        with transaction.atomic():
            actions.message_send(sender=alice, chat="Private", to="bob", content="rolled back")
            raise ChatError("conflict", "no")

    with pytest.raises(ChatError):
        await events.run_action(send_then_refuse)
    event = await layer.receive(channel)
    assert '"kept"' in event["text"]
    await layer.send(channel, {"type": "chat.event", "text": "marker"})
    assert (await layer.receive(channel))["text"] == "marker", "nothing of the rolled-back send"


async def test_slow_work_runs_in_a_pool_thread_not_the_database_thread(listener):
    threads = {}

    def where(**kwargs):
        return threading.get_ident()

    threads["db"] = await events.run_action(where)
    threads["db again"] = await events.run_action(where)
    threads["pool"] = await events.run_action(where, pool=True)
    assert threads["db"] == threads["db again"] != threads["pool"]


async def test_a_failing_layer_does_not_undo_or_hide_a_committed_change(listener, alice, bob, monkeypatch, caplog):
    layer, _ = listener

    async def down(group, message):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(layer, "group_send", down)
    message, created = await events.run_action(
        actions.message_send, sender=alice, chat="Private", to="bob", content="stored"
    )
    assert created and message.pk
    assert "publishing to" in caplog.text
