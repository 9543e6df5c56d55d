"""The one error type of the chat domain; every code maps to an `Error` frame on the wire."""

CODES = frozenset({"bad_request", "forbidden", "not_found", "conflict", "too_large", "rate_limited", "server_error"})


class ChatError(Exception):
    """A refused request. Raised by the protocol parser and by domain actions before they write."""

    def __init__(self, code: str, detail: str, *, close: int | None = None, fields: dict | None = None) -> None:
        assert code in CODES, code
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.close = close  # a WebSocket close code: the socket must not stay open after this
        # More of the refusal, for a client to show its own way (a mute's `Until`, say).
        self.fields = fields or {}
        self.ref: str | None = None  # the refused frame's Type, when the parser knew it
        self.client_id: str | None = None
