from functools import wraps

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

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
    return render(request, "chat/index.html", {"chat_config": {"User": request.user.username, "Socket": "/ws/chat/"}})


@require_GET
@api_login_required
def api_users(request: HttpRequest) -> JsonResponse:
    return JsonResponse(selectors.users_list(), safe=False, json_dumps_params={"ensure_ascii": False})


@require_GET
@api_login_required
def api_groups(request: HttpRequest) -> JsonResponse:
    return JsonResponse(selectors.groups_list(), safe=False, json_dumps_params={"ensure_ascii": False})
