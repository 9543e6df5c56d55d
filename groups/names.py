"""Group name rules, shared by the protocol parser, the actions and the admin (pure Python)."""

import unicodedata

from chatsite.errors import ChatError
from chatsite.names import has_bidi_control, has_visible

MAX_NAME_LENGTH = 64


def clean_group_name(value: object) -> str:
    """Trim and check a group name: 1 to 64 characters, any Unicode that draws something.

    Control characters, bidirectional controls (U+202E would show "abc" as "cba") and names
    made only of invisible characters are refused: they could pose as another group.
    """
    if not isinstance(value, str):
        raise ChatError("bad_request", "A group name must be a string.")
    name = value.strip()
    if not name:
        raise ChatError("bad_request", "A group name cannot be empty.")
    if len(name) > MAX_NAME_LENGTH:
        raise ChatError("bad_request", f"A group name has at most {MAX_NAME_LENGTH} characters.")
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise ChatError("bad_request", "A group name cannot contain control characters.")
    if has_bidi_control(name):
        raise ChatError("bad_request", "A group name cannot contain bidirectional control characters.")
    if not has_visible(name):
        raise ChatError("bad_request", "A group name cannot be made only of invisible characters.")
    return name
