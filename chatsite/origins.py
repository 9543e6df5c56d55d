"""Which pages may open a WebSocket: the site's own origins, scheme and port included.

Channels' `AllowedHostsOriginValidator` compares only the host name of the `Origin` with
ALLOWED_HOSTS, so any page on that host name (another web app on another port, or plain http
beside https) could open a user's socket with their cookie. Here the whole origin must be one
of the site's: each of CSRF_TRUSTED_ORIGINS, and the origin this handshake was served on (its
Host header, when ALLOWED_HOSTS allows it, with the scheme of the connection). Channels'
`OriginValidator` does the matching. It only reads the scope before handing over, and never
wraps `send` (chatsite.fastwrite needs Daphne's own).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from channels.security.websocket import OriginValidator, WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin1")
    return None


def served_scheme(scope: dict) -> str:
    """The scheme of the page this socket belongs to: https for wss, for a TLS proxy's
    forwarded header (SECURE_PROXY_SSL_HEADER), and for a site served over HTTPS only."""
    if scope.get("scheme") in ("wss", "https") or settings.SECURE_SSL_REDIRECT:
        return "https"
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        meta_name, secure_value = proxy_header
        name = meta_name.removeprefix("HTTP_").lower().replace("_", "-").encode("latin1")
        value = _header(scope, name)
        if value is not None and value.split(",", 1)[0].strip() == secure_value:
            return "https"
    return "http"


def site_origins(scope: dict) -> list[str]:
    """The origins (patterns for `OriginValidator`) a page of this site may have."""
    # Django's "https://*.example.com" is Channels' "https://.example.com".
    origins = [origin.replace("://*.", "://.") for origin in settings.CSRF_TRUSTED_ORIGINS]
    host = (_header(scope, b"host") or "").lower()
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]  # as Django's own get_host()
    domain, _port = split_domain_port(host)
    if domain and validate_host(domain, allowed_hosts):
        origins.append(f"{served_scheme(scope)}://{host}")
    return origins


class SiteOriginValidator:
    """Refuses a handshake whose `Origin` is not one of the site's own (see the module)."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict, receive: Any, send: Any) -> Any:
        if not well_formed(_header(scope, b"origin")):
            return await WebsocketDenier()(scope, receive, send)
        return await OriginValidator(self.application, site_origins(scope))(scope, receive, send)


def well_formed(origin: str | None) -> bool:
    """Whether `OriginValidator` can judge `origin` (it raises on a bad port or IPv6 address)."""
    if not origin or len(origin) > 300:
        return False
    try:
        parsed = urlparse(origin)
        parsed.port  # noqa: B018  (raises ValueError when out of range or not a number)
    except ValueError:
        return False
    return bool(parsed.scheme and parsed.hostname)
