"""ASGI entry point: HTTP through Django, WebSockets through the chat consumer.

The socket stack checks the whole `Origin` against the site's own (chatsite.origins) and
authenticates from the Django session cookie; the consumer refuses anonymous users at the handshake.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from accounts.middleware import SessionAuthMiddleware  # noqa: E402  (needs Django set up)
from chatsite import fastwrite  # noqa: E402
from chatsite.origins import SiteOriginValidator  # noqa: E402
from chatsite.routing import websocket_application  # noqa: E402

fastwrite.install()  # Daphne runs on Twisted: see chatsite/fastwrite.py

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # No middleware here may wrap `send`: the hub writes past it (chatsite.fastwrite).
        "websocket": SiteOriginValidator(SessionAuthMiddleware(websocket_application)),
    }
)
