"""The wire format on its own: no database, no sockets."""

import json

import pytest

from chatsite.errors import ChatError
from messaging import protocol


def parse(frame, username="alice"):
    return protocol.parse(json.dumps(frame), username=username)


def test_it_parses_every_client_message():
    assert parse({"Type": "Connect", "Since": 3}) == protocol.Connect(since=3)
    assert parse({"Type": "Send", "To": "bob", "Content": "hi", "Chat": "Private", "ClientId": "x"}) == protocol.Send(
        chat="Private", to="bob", content="hi", is_image=False, client_id="x"
    )
    assert parse({"Type": "Join", "Chat": "Group", "To": " Café ", "Before": 9}) == protocol.Join(
        chat="Group", to="Café", before=9
    )
    assert parse({"Type": "Create", "Name": "T", "List": ["bob", "bob"]}) == protocol.Create(name="T", members=("bob",))
    assert parse({"Type": "Delete", "Name": "T"}) == protocol.Delete(name="T")
    assert parse({"Type": "Leave", "Name": "T"}) == protocol.Leave(name="T")
    assert parse({"Type": "Read", "Chat": "Private", "To": "bob", "Id": 4}) == protocol.Read(
        chat="Private", to="bob", id=4
    )


def test_from_and_username_must_be_the_session_user():
    for key in ("From", "Username"):
        with pytest.raises(ChatError) as error:
            parse({"Type": "Connect", key: "mallory"})
        assert error.value.code == "forbidden"
    assert parse({"Type": "Connect", "From": "alice"}) == protocol.Connect(since=None)


@pytest.mark.parametrize("value", [True, 1.5, "1", -1])
def test_ids_must_be_non_negative_integers(value):
    with pytest.raises(ChatError):
        parse({"Type": "Connect", "Since": value})


def test_binary_frames_are_bad_requests():
    with pytest.raises(ChatError) as error:
        protocol.parse(None, username="alice")
    assert error.value.code == "bad_request"


def test_frames_are_encoded_compactly_as_utf8():
    assert protocol.encode({"Content": "héllo 👋"}) == '{"Content":"héllo 👋"}'


def test_time_is_iso_utc_with_milliseconds():
    from datetime import datetime, timezone

    assert (
        protocol.format_time(datetime(2026, 11, 24, 18, 0, 0, 123456, tzinfo=timezone.utc))
        == "2026-11-24T18:00:00.123Z"
    )


def test_errors_name_the_refused_type_and_client_id():
    with pytest.raises(ChatError) as error:
        parse({"Type": "Send", "To": "bob", "Content": 5, "Chat": "Private", "ClientId": "c9"})
    frame = protocol.error_frame(error.value)
    assert frame == {
        "Type": "Error",
        "Code": "bad_request",
        "Detail": "'Content' must be a string.",
        "Ref": "Send",
        "ClientId": "c9",
    }


def test_errors_of_unknown_types_have_no_ref():
    with pytest.raises(ChatError) as error:
        parse({"Type": "<script>"})
    assert "Ref" not in protocol.error_frame(error.value)


def test_a_lone_surrogate_escape_is_refused_and_an_escaped_emoji_is_text():
    send = '{"Type":"Send","Chat":"Private","To":"bob","Content":"%s"}'
    for lone in (r"a\ud800b", r"\uDFFF", r"x\ud83d"):
        with pytest.raises(ChatError) as refused:
            protocol.parse(send % lone, username="alice")
        assert refused.value.code == "bad_request" and "surrogate" in refused.value.detail
    assert protocol.parse(send % r"\ud83d\ude00 ok", username="alice").content == "😀 ok"
    assert (
        protocol.parse(send % r"\\ud800 is how you write it", username="alice").content == r"\ud800 is how you write it"
    )
