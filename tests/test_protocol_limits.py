"""Hostile frames on the parser alone: nesting, control characters, and a property-based fuzz."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatsite.errors import CODES, ChatError
from messaging import protocol


def parse(frame: dict | str):
    text = frame if isinstance(frame, str) else json.dumps(frame)
    return protocol.parse(text, username="alice")


def refusal(frame: dict | str) -> ChatError:
    with pytest.raises(ChatError) as error:
        parse(frame)
    return error.value


# ---- nesting ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000 + "]" * 100_000, "{" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000, "[" * 33 + "]" * 33],
)
def test_deep_nesting_is_a_bad_request(text):
    assert refusal(text).code == "bad_request"


def test_nesting_up_to_the_limit_is_decoded():
    depth = protocol.MAX_DEPTH - 1  # the frame object is the first level
    assert parse('{"Type":"Connect","x":' + "[" * depth + "]" * depth + "}") == protocol.Connect(since=None)


def test_brackets_inside_strings_do_not_count_as_nesting():
    text = "[{" * 5000 + ' \\" ' + "}]" * 5000  # an escaped backslash and quote inside
    command = parse({"Type": "Send", "Chat": "Private", "To": "bob", "Content": text})
    assert command.content == text


def test_a_recursion_error_is_a_bad_request_even_past_the_check(monkeypatch):
    monkeypatch.setattr(protocol, "MAX_DEPTH", 10**9)  # as if the bound missed a shape
    assert refusal("[" * 100_000 + "]" * 100_000).code == "bad_request"


def test_common_frames_skip_the_nesting_scan(monkeypatch):
    def scan(text):
        raise AssertionError("scanned")

    monkeypatch.setattr(protocol, "_nesting_problem", scan)
    parse({"Type": "Create", "Name": "T", "List": ["bob", "carol"]})


# ---- control characters -----------------------------------------------------------

SEND = {"Type": "Send", "Chat": "Private", "To": "bob", "Content": "hi"}
FIELDS = [
    (SEND, "To"),
    ({**SEND, "Chat": "Group", "To": "T"}, "To"),
    (SEND, "ClientId"),
    (SEND, "Content"),
    ({**SEND, "is_image": 1, "Content": "data:image/png;base64,AAAA"}, "Content"),
    ({"Type": "Create", "Name": "T"}, "Name"),
    ({"Type": "Create", "Name": "T", "List": ["bob"]}, "List"),
    ({"Type": "Delete", "Name": "T"}, "Name"),
    ({"Type": "Leave", "Name": "T"}, "Name"),
    ({"Type": "Join", "Chat": "Private", "To": "bob"}, "To"),
    ({"Type": "Read", "Chat": "Private", "To": "bob", "Id": 1}, "To"),
    ({"Type": "Report", "Id": 1, "Reason": "spam"}, "Reason"),
]


def _with(frame: dict, key: str, char: str) -> dict:
    value = frame.get(key, "x")
    if isinstance(value, list):
        return {**frame, key: [value[0] + char]}
    return {**frame, key: value + char + "x"}


@pytest.mark.parametrize("frame, key", FIELDS)
@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x7f", "\x85"])
def test_control_characters_are_refused_in_every_string_field(frame, key, char):
    assert parse(frame)  # the frame itself is fine
    assert refusal(_with(frame, key, char)).code == "bad_request"


@pytest.mark.parametrize("frame, key", [f for f in FIELDS if f[1] != "Content"])
def test_names_ids_and_reasons_refuse_even_newline_and_tab(frame, key):
    for char in "\n\t":
        assert refusal(_with(frame, key, char)).code == "bad_request"


def test_message_text_keeps_newline_and_tab_and_makes_carriage_returns_newlines():
    command = parse({**SEND, "Content": "one\r\ntwo\rthree\n\tfour"})
    assert command.content == "one\ntwo\nthree\n\tfour"


def test_a_nul_escape_is_refused_like_a_raw_one():
    assert refusal('{"Type":"Send","Chat":"Private","To":"bob","Content":"a\\u0000b"}').code == "bad_request"


@pytest.mark.parametrize("key", ["Since"])
def test_ids_beyond_the_database_integer_are_refused(key):
    assert refusal({"Type": "Connect", key: 2**63}).code == "bad_request"
    assert parse({"Type": "Connect", key: 2**63 - 1}) == protocol.Connect(since=2**63 - 1)


# ---- property-based fuzz ------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
any_text = st.text(alphabet=st.characters(codec=None, categories=None), max_size=200)
field_values = st.one_of(
    json_values,
    any_text,
    st.sampled_from(["alice", "bob", "T", "Private", "Group", "a\x00b", "\u3164", 0, 1, -1, 2**64]),
)
KEYS = ["Type", "Chat", "To", "Content", "is_image", "ClientId", "Name", "List", "Since", "Before", "Id", "Reason"]
frames = st.builds(
    lambda kind, fields: {"Type": kind, **fields},
    st.sampled_from([*protocol.PARSERS, "Nope"]) | st.text(max_size=8),
    st.dictionaries(st.sampled_from(KEYS[1:] + ["From", "Username"]), field_values, max_size=8),
)


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, allow_nan=True)


def assert_answered(text: str | None) -> None:
    """A command, or a ChatError with a known code that is not server_error; nothing else."""
    try:
        command = protocol.parse(text, username="alice")
    except ChatError as error:
        assert error.code in CODES and error.code != "server_error"
        protocol.encode(protocol.error_frame(error))  # and the refusal can be framed
        return
    assert type(command) in protocol.COMMAND_TYPES


fuzz = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fuzz
@given(frames)
def test_fuzzed_frames_get_a_command_or_a_coded_error(frame):
    assert_answered(json.dumps(frame, ensure_ascii=False))
    assert_answered(json.dumps(frame))  # \\u escapes, lone surrogates included


@fuzz
@given(json_values | any_text)
def test_fuzzed_json_values_get_a_command_or_a_coded_error(value):
    assert_answered(_text(value))


@fuzz
@given(st.binary(max_size=300))
def test_fuzzed_bytes_get_a_command_or_a_coded_error(raw):
    assert_answered(None)  # a binary frame
    assert_answered(raw.decode("latin-1"))
    assert_answered(raw.decode("utf-8", errors="replace"))


@fuzz
@given(st.lists(st.sampled_from(list('[]{}",:\\ 1a')), max_size=200))
def test_fuzzed_bracket_soup_gets_a_command_or_a_coded_error(chars):
    assert_answered('{"Type":"Connect","x":' + "".join(chars) + "}")
