"""The wire format: parse client frames into typed commands, build server frames.

Pure Python, no ORM: everything here can be tested without a database. The contract
is docs/protocol.md. Identity claims (`From`, `Username`) are checked here against the
session's username, so no handler ever sees a frame that speaks for someone else.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

import emoji as emoji_data

from chatsite.errors import ChatError
from groups.names import clean_group_name

PRIVATE = "Private"
GROUP = "Group"
CHATS = (PRIVATE, GROUP)
MAX_FRAME_CHARS = 12 * 1024 * 1024  # an image data URL fits; anything bigger is refused unparsed
MAX_CLIENT_ID = 64
MAX_USERNAME = 150
MAX_REASON = 500
MAX_DEPTH = 32  # frames are flat objects; the limit only keeps the decoder's recursion bounded
MAX_ID = 2**63 - 1  # the database's integer
MAX_EMOJI = 32  # characters: the longest ZWJ sequences (families, flags of regions) have 10 or so
REPLY_QUOTE = 200  # characters of the original's text in a reply's `ReplyTo`
MAX_QUERY = 200  # characters of a `Search` query
MAX_QUERY_WORDS = 20
# Control characters (Cc): PostgreSQL refuses NUL where SQLite stores it, so all of them are
# refused everywhere, except the tab and newline of message text (`\r` is made a newline).
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

# WebSocket close codes (autobahn, under Daphne, sends only 1000 and 3000-4999).
CLOSE_SESSION_ENDED = 4001  # logged out, password changed, session expired, account deleted
CLOSE_POLICY = 4003  # banned or deactivated
# The server may have missed events for this socket: reconnect and resume with `Seq`. (1012,
# "service restart", would say it best.) The hubs replay from the database instead, so today
# nothing sends it; clients must still handle it.
CLOSE_RESYNC = 4012


@dataclass(frozen=True)
class Connect:
    since: int | None
    seq: int | None = None  # resume: every change after this `Seq` (messaging.seq)


@dataclass(frozen=True)
class Send:
    chat: str
    to: str
    content: str
    is_image: bool
    client_id: str | None
    reply_to: int | None = None


@dataclass(frozen=True)
class Edit:
    id: int
    content: str


@dataclass(frozen=True)
class Remove:
    id: int


@dataclass(frozen=True)
class React:
    id: int
    emoji: str
    on: bool


@dataclass(frozen=True)
class Join:
    chat: str
    to: str
    before: int | None
    around: int | None = None  # the page around this `Id` (a search result opened)
    after: int | None = None  # the page just newer than this `Id`


@dataclass(frozen=True)
class Search:
    query: str
    words: tuple[str, ...]
    chat: str | None = None  # with `to`: only this conversation
    to: str | None = None
    before: int | None = None


@dataclass(frozen=True)
class Create:
    name: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class Delete:
    name: str


@dataclass(frozen=True)
class Leave:
    name: str


@dataclass(frozen=True)
class Read:
    chat: str
    to: str
    id: int


@dataclass(frozen=True)
class Report:
    id: int
    reason: str


Command = Connect | Send | Edit | Remove | React | Join | Search | Create | Delete | Leave | Read | Report


def _bad(detail: str) -> ChatError:
    return ChatError("bad_request", detail)


def _str(frame: dict, key: str, *, max_len: int = MAX_USERNAME) -> str:
    value = frame.get(key)
    if not isinstance(value, str) or not value:
        raise _bad(f"'{key}' must be a non-empty string.")
    if len(value) > max_len:
        raise _bad(f"'{key}' is too long.")
    if CONTROL.search(value):
        raise _bad(f"'{key}' cannot contain control characters.")
    return value


def _opt_int(frame: dict, key: str) -> int | None:
    value = frame.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise _bad(f"'{key}' must be a non-negative integer.")
    return value


def _id(frame: dict, key: str = "Id") -> int:
    value = _opt_int(frame, key)
    if value is None:
        raise _bad(f"'{key}' must be a non-negative integer.")
    return value


def _chat(frame: dict) -> str:
    chat = frame.get("Chat")
    if chat not in CHATS:
        raise _bad('\'Chat\' must be "Private" or "Group".')
    return chat


def _target(frame: dict, chat: str) -> str:
    return clean_group_name(frame.get("To")) if chat == GROUP else _str(frame, "To")


def _parse_connect(frame: dict) -> Connect:
    since, seq = _opt_int(frame, "Since"), _opt_int(frame, "Seq")
    if since is not None and seq is not None:
        raise _bad("Give 'Seq' or 'Since', not both.")
    return Connect(since=since, seq=seq)


def _content(content: str, *, is_image: bool) -> str:
    """Message text with `\r\n` and lone `\r` made `\n` (as a browser's textarea sends it),
    and no other control character than tab and newline; an image's data URL has none."""
    if is_image:
        if not (content.isascii() and content.isprintable()):  # twice as fast as CONTROL here
            raise _bad("An image's 'Content' must be a data URL of printable ASCII.")
        return content
    if "\r" in content:
        content = content.replace("\r\n", "\n").replace("\r", "\n")
    if TEXT_CONTROL.search(content):
        raise _bad("'Content' cannot contain control characters other than newline and tab.")
    return content


def _parse_send(frame: dict) -> Send:
    chat = _chat(frame)
    content = frame.get("Content")
    if not isinstance(content, str):
        raise _bad("'Content' must be a string.")
    is_image = frame.get("is_image", 0)
    if type(is_image) not in (int, bool) or is_image not in (0, 1):
        raise _bad("'is_image' must be 0 or 1.")
    content = _content(content, is_image=bool(is_image))
    client_id = frame.get("ClientId")
    if client_id is not None:
        client_id = _str(frame, "ClientId", max_len=MAX_CLIENT_ID)
    return Send(
        chat=chat,
        to=_target(frame, chat),
        content=content,
        is_image=bool(is_image),
        client_id=client_id,
        reply_to=_opt_int(frame, "ReplyTo"),
    )


def _parse_edit(frame: dict) -> Edit:
    content = frame.get("Content")
    if not isinstance(content, str):
        raise _bad("'Content' must be a string.")
    return Edit(id=_id(frame), content=_content(content, is_image=False))


def _parse_remove(frame: dict) -> Remove:
    return Remove(id=_id(frame))


@functools.cache
def _qualified() -> dict[str, str]:
    """Every fully qualified emoji by its spelling without variation selectors (U+FE0F)."""
    fully = emoji_data.STATUS["fully_qualified"]
    return {e.replace("\ufe0f", ""): e for e, data in emoji_data.EMOJI_DATA.items() if data["status"] == fully}


def emoji_clean(value: Any) -> str:
    """One emoji (skin tones, ZWJ sequences, flags and keycaps included), as the `emoji`
    package's Unicode data knows them, in its fully qualified form: "❤" and "❤️", or "🏳‍🌈"
    and "🏳️‍🌈", are one reaction, not two. A lone skin tone (a component) is none."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_EMOJI:
        raise _bad("'Emoji' must be a single emoji.")
    qualified = _qualified().get(value.replace("\ufe0f", ""))
    if qualified is None:
        raise _bad("'Emoji' must be a single emoji.")
    return qualified


def _parse_react(frame: dict) -> React:
    on = frame.get("On")
    if not isinstance(on, bool):
        raise _bad("'On' must be true (add my reaction) or false (take it back).")
    return React(id=_id(frame), emoji=emoji_clean(frame.get("Emoji")), on=on)


def _parse_join(frame: dict) -> Join:
    chat = _chat(frame)
    cursors = {key: _opt_int(frame, key) for key in ("Before", "Around", "After")}
    if sum(value is not None for value in cursors.values()) > 1:
        raise _bad("Give at most one of 'Before', 'Around' and 'After'.")
    return Join(
        chat=chat, to=_target(frame, chat), before=cursors["Before"], around=cursors["Around"], after=cursors["After"]
    )


def search_words(query: str) -> tuple[str, ...]:
    """The words of a query: split on white space, each once (case aside), in their order."""
    words: dict[str, str] = {}
    for word in query.split():
        words.setdefault(word.casefold(), word)
    return tuple(words.values())


def _parse_search(frame: dict) -> Search:
    query = frame.get("Query")
    if not isinstance(query, str):
        raise _bad("'Query' must be a string.")
    if len(query) > MAX_QUERY:
        raise _bad(f"'Query' has at most {MAX_QUERY} characters.")
    if CONTROL.search(query):
        raise _bad("'Query' cannot contain control characters.")
    words = search_words(query)
    if not words:
        raise _bad("'Query' must hold a word to look for.")
    if len(words) > MAX_QUERY_WORDS:
        raise _bad(f"'Query' has at most {MAX_QUERY_WORDS} different words.")
    chat = to = None
    if frame.get("Chat") is not None or frame.get("To") is not None:
        chat = _chat(frame)
        to = _target(frame, chat)
    return Search(query=query, words=words, chat=chat, to=to, before=_opt_int(frame, "Before"))


def _parse_create(frame: dict) -> Create:
    members = frame.get("List", [])
    if not isinstance(members, list) or not all(isinstance(m, str) and 0 < len(m) <= MAX_USERNAME for m in members):
        raise _bad("'List' must be a list of usernames.")
    if len(members) > 1000:
        raise _bad("'List' has too many members.")
    if any(CONTROL.search(m) for m in members):
        raise _bad("'List' entries cannot contain control characters.")
    return Create(name=clean_group_name(frame.get("Name")), members=tuple(dict.fromkeys(members)))


def _parse_delete(frame: dict) -> Delete:
    return Delete(name=clean_group_name(frame.get("Name")))


def _parse_leave(frame: dict) -> Leave:
    return Leave(name=clean_group_name(frame.get("Name")))


def _parse_read(frame: dict) -> Read:
    chat = _chat(frame)
    return Read(chat=chat, to=_target(frame, chat), id=_id(frame))


def _parse_report(frame: dict) -> Report:
    message_id = _id(frame)
    reason = frame.get("Reason", "")
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise _bad(f"'Reason' must be a string of at most {MAX_REASON} characters.")
    if CONTROL.search(reason):
        raise _bad("'Reason' cannot contain control characters.")
    return Report(id=message_id, reason=reason.strip())


PARSERS: dict[str, Callable[[dict], Command]] = {
    "Connect": _parse_connect,
    "Send": _parse_send,
    "Edit": _parse_edit,
    "Remove": _parse_remove,
    "React": _parse_react,
    "Join": _parse_join,
    "Search": _parse_search,
    "Create": _parse_create,
    "Delete": _parse_delete,
    "Leave": _parse_leave,
    "Read": _parse_read,
    "Report": _parse_report,
}


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def _nesting_problem(text: str) -> str | None:
    """Why `text` must not reach the decoder, if it nests deeper than MAX_DEPTH.

    json.loads recurses once per level: "[" * 100000 raised RecursionError. Called only
    when the text has more than MAX_DEPTH brackets at all, so the common frame pays two
    str.count calls. String contents are dropped first (brackets in a message are text);
    then each pass of str.replace peels one innermost level, all in C.
    """
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    for _ in range(MAX_DEPTH):
        if not brackets:
            return None
        peeled = brackets.replace("[]", "").replace("{}", "")
        if peeled == brackets:
            return "The frame is not valid JSON."  # unbalanced or crossed brackets
        brackets = peeled
    return f"The frame nests deeper than {MAX_DEPTH} levels." if brackets else None


def _is_unicode(value: Any) -> bool:
    """True if every string in a decoded JSON value is encodable text (no lone surrogates)."""
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


def parse(text: str | None, *, username: str) -> Command:
    """Decode one text frame into a command, or raise ChatError.

    `From` and `Username`, when present, must be the session's `username`: the server
    never acts on a claim to be someone else.
    """
    if text is None:
        raise _bad("Frames must be JSON text, not binary.")
    if len(text) > MAX_FRAME_CHARS:
        raise ChatError("too_large", "The frame is too large.")
    if text.count("[") + text.count("{") > MAX_DEPTH:
        problem = _nesting_problem(text)
        if problem:
            raise _bad(problem)
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: a nesting the check above missed
        raise _bad("The frame is not valid JSON.") from None
    if not isinstance(frame, dict):
        raise _bad("A frame must be a JSON object.")
    if _SURROGATE_ESCAPE.search(text) and not _is_unicode(frame):
        # A lone "\ud800" is valid JSON but no text: it could be neither stored nor sent.
        raise _bad("The frame holds a lone UTF-16 surrogate escape, which is not text.")
    kind = frame.get("Type")
    if not isinstance(kind, str) or kind not in PARSERS:
        raise _bad("Unknown or missing 'Type'.")
    try:
        for key in ("From", "Username"):
            claim = frame.get(key)
            if claim is not None and claim != username:
                raise ChatError("forbidden", f"'{key}' must be your own username.")
        return PARSERS[kind](frame)
    except ChatError as error:
        # Let the client match the refusal to what it sent.
        error.ref = kind
        client_id = frame.get("ClientId")
        if isinstance(client_id, str) and 0 < len(client_id) <= MAX_CLIENT_ID:
            error.client_id = client_id
        raise


# ---- server frames ---------------------------------------------------------------


def encode(frame: dict[str, Any]) -> str:
    """Serialize a server frame once; the text is what every recipient's socket gets."""
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def message_frame(
    *,
    id: int,
    sender: str,
    to: str,
    chat: str,
    content: str,
    is_image: bool,
    time: datetime,
    client_id: str | None,
    seq: int | None = None,
    html: str = "",
    edited: datetime | None = None,
    reply_to: dict | None = None,
    reactions: list[dict] | None = None,
) -> dict:
    frame = {
        "Type": "Message",
        "Id": id,
        "From": sender,
        "To": to,
        "Chat": chat,
        "Content": content,
        "is_image": int(is_image),
        "Time": format_time(time),
    }
    if seq is not None:
        frame["Seq"] = seq
    if client_id:
        frame["ClientId"] = client_id
    if html:
        frame["Html"] = html
    if edited is not None:
        frame["Edited"] = format_time(edited)
    if reply_to is not None:
        frame["ReplyTo"] = reply_to
    if reactions:
        frame["Reactions"] = reactions
    return frame


def reply_frame(*, id: int, original: Any) -> dict:
    """A reply's `ReplyTo`: the start of its original as it is now (a stored Message with its
    sender loaded, or None once it was removed)."""
    if original is None:
        return {"Id": id, "Removed": True}
    content = image_path(original.pk) if original.is_image else original.text[:REPLY_QUOTE]
    return {"Id": id, "From": original.sender.username, "Content": content, "is_image": int(original.is_image)}


def message_to_frame(message: Any, *, change: str | None = None) -> dict:
    """The `Message` frame of a stored messaging.models.Message (sender, recipient and group
    loaded; its original, when it replies, and its `reaction_list` too, as the selectors load
    them): read by attribute only, so this module stays free of the ORM. A `change` ("edit",
    "reaction") says why a message already sent is sent again."""
    private = message.group_id is None
    reply_to = None
    if message.reply_to_id is not None:
        # None for a removed original (its row is gone; the relation is not a constraint).
        reply_to = reply_frame(id=message.reply_to_id, original=getattr(message, "reply_to", None))
    frame = message_frame(
        id=message.pk,
        sender=message.sender.username,
        to=message.recipient.username if private else message.group.name,
        chat=PRIVATE if private else GROUP,
        content=image_path(message.pk) if message.is_image else message.text,
        is_image=message.is_image,
        time=message.created,
        client_id=message.client_id,
        seq=message.seq,
        html=message.html,
        edited=message.edited,
        reply_to=reply_to,
        reactions=[{"Emoji": e, "Users": users} for e, users in getattr(message, "reaction_list", ())],
    )
    if change:
        frame["Change"] = change
    return frame


def image_path(message_id: int) -> str:
    return f"/images/{message_id}/"


def history_frame(*, chat: str, to: str, messages: list[dict], has_more: bool, has_newer: bool | None = None) -> dict:
    """`History`; `HasNewer` only for a page that need not be the newest (`Around`, `After`)."""
    frame = {"Type": "History", "Chat": chat, "To": to, "Messages": messages, "HasMore": has_more}
    if has_newer is not None:
        frame["HasNewer"] = has_newer
    return frame


def found_frame(
    *, query: str, messages: list[dict], before: int | None, chat: str | None = None, to: str | None = None
) -> dict:
    """`Found`: a page of search results, newest first. With more to come, `Before` is what to
    send for the next page (it can be below the page's last `Id`: see docs/protocol.md)."""
    frame: dict[str, Any] = {"Type": "Found", "Query": query}
    if chat is not None:
        frame.update(Chat=chat, To=to)
    frame.update(Messages=messages, HasMore=before is not None)
    if before is not None:
        frame["Before"] = before
    return frame


def state_frame(
    *, user: str, users: list[dict], groups: list[dict], last_id: int, seq: int, reset: bool = False
) -> dict:
    frame = {"Type": "State", "User": user, "Users": users, "Groups": groups, "LastId": last_id, "Seq": seq}
    if reset:
        frame["Reset"] = True
    return frame


def synced_frame(*, seq: int) -> dict:
    return {"Type": "Synced", "Seq": seq}


def presence_frame(*, username: str, online: bool) -> dict:
    return {"Type": "Presence", "Username": username, "Online": online}


def group_frame(*, event: str, name: str, owner: str, members: list[str], user: str, seq: int) -> dict:
    return {
        "Type": "Group",
        "Event": event,
        "Name": name,
        "Owner": owner,
        "Members": members,
        "User": user,
        "Seq": seq,
    }


def removed_frame(*, ids: list[int], seq: int, by: str) -> dict:
    return {"Type": "Removed", "Ids": ids, "Seq": seq, "By": by}


def change_frames(changes: list[Any]) -> list[dict]:
    """Current-state frames of changes by `Seq` (messaging.selectors.change_list): a message's
    `Message`; for tombstones (they have `removed_by`) one `Removed` per removal."""
    frames: list[dict] = []
    for change in changes:
        if getattr(change, "removed_by", None) is None:
            frames.append(message_to_frame(change))
            continue
        last = frames[-1] if frames else None
        if last and last["Type"] == "Removed" and last["Seq"] == change.seq and len(last["Ids"]) < 1000:
            last["Ids"].append(change.message_id)
        else:
            frames.append(removed_frame(ids=[change.message_id], seq=change.seq, by=change.removed_by))
    return frames


def reported_frame(*, id: int) -> dict:
    return {"Type": "Reported", "Id": id}


def read_frame(*, chat: str, to: str, id: int, seq: int) -> dict:
    return {"Type": "Read", "Chat": chat, "To": to, "Id": id, "Seq": seq}


COMMAND_TYPES = {
    Connect: "Connect",
    Send: "Send",
    Edit: "Edit",
    Remove: "Remove",
    React: "React",
    Join: "Join",
    Search: "Search",
    Create: "Create",
    Delete: "Delete",
    Leave: "Leave",
    Read: "Read",
    Report: "Report",
}


def error_frame(error: ChatError, *, command: Command | None = None) -> dict:
    """`Error`, with `Ref` (the refused frame's `Type`) and its `ClientId` when known."""
    frame = {**error.fields, "Type": "Error", "Code": error.code, "Detail": error.detail}
    ref = COMMAND_TYPES.get(type(command)) or getattr(error, "ref", None)
    client_id = getattr(command, "client_id", None) or getattr(error, "client_id", None)
    if ref:
        frame["Ref"] = ref
    if client_id:
        frame["ClientId"] = client_id
    return frame
