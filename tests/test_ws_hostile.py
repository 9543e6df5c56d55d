"""Hostile frames through the real consumer, on SQLite and PostgreSQL alike: a coded Error, no
traceback, nothing logged at WARNING or above, and the socket keeps working."""

from __future__ import annotations

import json
import logging

import pytest
from channels.db import database_sync_to_async
from hypothesis import HealthCheck, given
from hypothesis import settings as fuzz_settings

from chatsite.errors import CODES, ChatError
from groups.models import ChatGroup
from messaging import protocol
from messaging.models import Message, Report
from tests.test_protocol_limits import frames

pytestmark = pytest.mark.django_db(transaction=True)

NUL = "\\u0000"
SERVER_FRAMES = {"Message", "History", "State", "Presence", "Group", "Removed", "Reported", "Read"}


@pytest.fixture
def quiet(caplog):
    caplog.set_level(logging.INFO)
    yield caplog
    loud = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert not loud, [record.getMessage() for record in loud]


@database_sync_to_async
def stored() -> tuple[int, int, int]:
    return Message.objects.count(), Report.objects.count(), ChatGroup.objects.count()


async def still_answers(sock) -> None:
    await sock.comm.send_to(text_data=json.dumps({"Type": "Connect"}))
    await sock.expect("State")


async def test_deeply_nested_json_is_a_bad_request_and_logs_nothing(connect, alice, quiet):
    a = await connect(alice)
    await a.comm.send_to(text_data="[" * 100_000 + "]" * 100_000)
    await a.expect("Error", Code="bad_request")
    await still_answers(a)


@pytest.mark.parametrize(
    "frame",
    [
        {"Type": "Send", "Chat": "Private", "To": "bob", "Content": "a\x00b"},
        {"Type": "Send", "Chat": "Private", "To": "bob", "Content": "hi", "ClientId": "c\x00"},
        {"Type": "Send", "Chat": "Private", "To": "b\x00ob", "Content": "hi"},
        {"Type": "Send", "Chat": "Group", "To": "T\x00", "Content": "hi"},
        {"Type": "Send", "Chat": "Private", "To": "bob", "Content": "data:image/png;base64,\x00", "is_image": 1},
        {"Type": "Join", "Chat": "Private", "To": "b\x00ob"},
        {"Type": "Read", "Chat": "Private", "To": "b\x00ob", "Id": 1},
        {"Type": "Create", "Name": "N\x00"},
        {"Type": "Create", "Name": "N", "List": ["b\x00ob"]},
        {"Type": "Delete", "Name": "T\x00"},
        {"Type": "Leave", "Name": "T\x00"},
        {"Type": "Report", "Id": 1, "Reason": "spam\x00"},
    ],
    ids=lambda frame: frame["Type"] + "-" + next(k for k, v in frame.items() if NUL in json.dumps(v)),
)
async def test_a_nul_in_any_string_field_is_a_bad_request_on_every_database(connect, alice, bob, quiet, frame):
    a = await connect(alice)
    before = await stored()
    await a.send(frame)
    await a.expect("Error", Code="bad_request")
    assert await stored() == before
    await still_answers(a)


async def test_carriage_returns_arrive_as_newlines(connect, alice, bob):
    a = await connect(alice)
    await a.send({"Type": "Send", "Chat": "Private", "To": "bob", "Content": "one\r\ntwo\rthree"})
    echo = await a.expect("Message")
    assert echo["Content"] == "one\ntwo\nthree"


@pytest.mark.parametrize("text", ["\u200b", " \u200d\ufeff ", "\u3164\u3164", "\u2060\n\t"])
async def test_a_message_of_invisible_characters_counts_as_empty(connect, alice, bob, text):
    a = await connect(alice)
    await a.send({"Type": "Send", "Chat": "Private", "To": "bob", "Content": text})
    error = await a.expect("Error", Code="bad_request")
    assert "empty" in error["Detail"]
    assert await stored() == (0, 0, 0)


@fuzz_settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(frame=frames)
async def test_fuzzed_frames_over_the_socket_get_a_coded_error_or_a_valid_frame(
    connect, alice, bob, caplog, settings, frame
):
    """One socket for all examples (hypothesis reuses the fixtures). Each fuzzed frame is
    followed by a Connect: the replies up to that Connect's State are the fuzzed frame's."""
    settings.CHAT_RATE_PER_SECOND, settings.CHAT_RATE_BURST = 10_000, 10_000
    settings.CHAT_USER_RATE_PER_SECOND, settings.CHAT_USER_RATE_BURST = 10_000, 10_000
    caplog.set_level(logging.INFO)
    if not hasattr(alice, "fuzz_socket"):
        alice.fuzz_socket = await connect(alice)
    sock = alice.fuzz_socket
    text = json.dumps(frame, ensure_ascii=False)
    states = 2 if isinstance(_parsed(text), protocol.Connect) else 1
    await sock.comm.send_to(text_data=text)
    await sock.comm.send_to(text_data='{"Type":"Connect"}')
    while states:
        reply = await sock.recv(timeout=10)
        states -= reply["Type"] == "State"
        if reply["Type"] == "Error":
            assert reply["Code"] in CODES and reply["Code"] != "server_error", reply
        else:
            assert reply["Type"] in SERVER_FRAMES, reply
    loud = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert not loud, loud


def _parsed(text: str):
    try:
        return protocol.parse(text, username="alice")
    except ChatError:
        return None
