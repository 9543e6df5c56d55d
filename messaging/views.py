from functools import wraps

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotModified,
    JsonResponse,
)
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.selectors import user_is_moderator
from messaging import selectors


def api_login_required(view):
    """Like login_required, but an API answers 401 JSON instead of redirecting to a form."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            return JsonResponse({"Error": "Authentication required."}, status=401)
        return view(request, *args, **kwargs)

    return wrapper


@login_required
def chat(request: HttpRequest) -> HttpResponse:
    config = {
        "User": request.user.username,
        "Socket": "/ws/chat/",
        "ImageMaxBytes": settings.CHAT_IMAGE_MAX_BYTES,
        "TextMaxLength": settings.CHAT_MAX_TEXT_LENGTH,
        "EditWindow": settings.CHAT_EDIT_WINDOW or None,  # seconds, or None: no limit
        "Moderator": user_is_moderator(request.user),  # may remove any message
    }
    return render(request, "chat/index.html", {"chat_config": config})


@require_GET
@api_login_required
def image(request: HttpRequest, message_id: int, thumbnail: bool = False) -> HttpResponse:
    """An image of a conversation the user may read; 404 for everyone else (no hint it exists)."""
    found = selectors.image_get(user=request.user, message_id=message_id, thumbnail=thumbnail)
    if found is None:
        raise Http404("No such image.")
    data, content_type = found
    etag = f'"{"t" if thumbnail else "i"}{message_id}"'  # stored images never change
    if etag in request.headers.get("If-None-Match", ""):
        response = HttpResponseNotModified()
    else:
        response = HttpResponse(data, content_type=content_type)
        response["Content-Disposition"] = f'inline; filename="image-{message_id}.{content_type.split("/")[-1]}"'
    response["ETag"] = etag
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@require_GET
@api_login_required
def api_users(request: HttpRequest) -> JsonResponse:
    return JsonResponse(selectors.user_list(), safe=False, json_dumps_params={"ensure_ascii": False})


@require_GET
@api_login_required
def api_groups(request: HttpRequest) -> JsonResponse:
    return JsonResponse(selectors.group_list(), safe=False, json_dumps_params={"ensure_ascii": False})
