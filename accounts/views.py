from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.debug import sensitive_post_parameters

from accounts.forms import RegisterForm
from accounts.login import LoginForm, client_ip
from accounts.models import Mute, Registration

REGISTRATION_WINDOW = timedelta(hours=1)


@sensitive_post_parameters("password1", "password2")
def register(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("chat")
    ip = client_ip(request)
    if request.method == "POST" and registrations_exhausted(ip=ip):
        context = {"limit": settings.CHAT_REGISTRATIONS_PER_HOUR}
        return render(request, "accounts/registration_limited.html", context, status=429)
    form = RegisterForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            user = form.save()
            Registration.objects.create(ip=ip)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("chat")
    return render(request, "accounts/register.html", {"form": form}, status=400 if form.errors else 200)


def registrations_exhausted(*, ip: str) -> bool:
    """Whether `ip` has used up its accounts of the last hour (and forget older sign-ups)."""
    since = timezone.now() - REGISTRATION_WINDOW
    Registration.objects.filter(created__lt=since).delete()
    return Registration.objects.filter(ip=ip, created__gte=since).count() >= settings.CHAT_REGISTRATIONS_PER_HOUR


class LoginView(auth_views.LoginView):
    """Django's login, with the banned user told why (accounts.login) and a muted one told
    until when, on the chat page they land on."""

    form_class = LoginForm
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def form_valid(self, form: LoginForm) -> HttpResponse:
        response = super().form_valid(form)
        mute = Mute.objects.filter(user=form.get_user(), until__gt=timezone.now()).first()
        if mute is not None:
            reason = f" ({mute.reason})" if mute.reason else ""
            messages.warning(self.request, f"You are muted until {mute.until:%Y-%m-%d %H:%M} UTC{reason}.")
        return response
