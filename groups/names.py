"""Group name rules, shared by the protocol parser, the actions and the admin (pure Python)."""

import unicodedata

from chatsite.errors import ChatError

MAX_NAME_LENGTH = 64


def clean_group_name(value: object) -> str:
    """Trim and check a group name: 1 to 64 characters, any Unicode except control characters."""
    if not isinstance(value, str):
        raise ChatError("bad_request", "A group name must be a string.")
    name = value.strip()
    if not name:
        raise ChatError("bad_request", "A group name cannot be empty.")
    if len(name) > MAX_NAME_LENGTH:
        raise ChatError("bad_request", f"A group name has at most {MAX_NAME_LENGTH} characters.")
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise ChatError("bad_request", "A group name cannot contain control characters.")
    return name
