from datetime import UTC, timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.debug import sensitive_post_parameters

from accounts import actions
from accounts.forms import EmailForm, PasswordChangeForm, PasswordResetSetForm, RegisterForm
from accounts.login import LoginForm, client_ip
from accounts.models import Mute, Registration
from accounts.selectors import invite_find
from accounts.sessions import session_register
from chatsite.errors import ChatError
from chatsite.ratelimit import limit_take

REGISTRATION_WINDOW = timedelta(hours=1)
INVITE_SESSION_KEY = "chat_invite"  # the token of an invite link opened before logging in


@sensitive_post_parameters("password1", "password2")
def register(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("chat")
    invite, problem = _pending_invite(request)
    if settings.CHAT_REGISTRATION == "closed" or (settings.CHAT_REGISTRATION == "invite" and invite is None):
        context = {"mode": settings.CHAT_REGISTRATION, "problem": problem}
        return render(request, "accounts/registration_closed.html", context, status=403)
    ip = client_ip(request)
    if request.method == "POST" and registrations_exhausted(ip=ip):
        context = {"limit": settings.CHAT_REGISTRATIONS_PER_HOUR}
        return render(request, "accounts/registration_limited.html", context, status=429)
    form = RegisterForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        token = invite.token if invite else None
        try:
            actions.user_register(user=form.save(commit=False), ip=ip, invite_token=token)
        except ChatError as error:  # the link ran out since the page was shown
            request.session.pop(INVITE_SESSION_KEY, None)
            form.add_error(None, error.detail)
        else:
            request.session.pop(INVITE_SESSION_KEY, None)
            login(request, form.instance, backend="django.contrib.auth.backends.ModelBackend")
            if invite and invite.group:
                messages.success(request, f"Welcome! You are in the group {invite.group.name}.")
            return redirect("chat")
    context = {"form": form, "invite": invite, "problem": problem}
    return render(request, "accounts/register.html", context, status=400 if form.errors else 200)


def _pending_invite(request: HttpRequest):
    """The invite link this browser opened before logging in or registering, if it still works
    (else None and why, once: a link that no longer works is forgotten)."""
    token = request.session.get(INVITE_SESSION_KEY)
    if token is None:
        return None, ""
    invite, problem = invite_find(token=token)
    if invite is None:
        request.session.pop(INVITE_SESSION_KEY, None)
    return invite, problem


def registrations_exhausted(*, ip: str) -> bool:
    """Whether `ip` has used up its accounts of the last hour (and forget older sign-ups)."""
    since = timezone.now() - REGISTRATION_WINDOW
    Registration.objects.filter(created__lt=since).delete()
    return Registration.objects.filter(ip=ip, created__gte=since).count() >= settings.CHAT_REGISTRATIONS_PER_HOUR


def invite_open(request: HttpRequest, token: str) -> HttpResponse:
    """An invite link. Someone not logged in is sent to sign up (or, with registration closed,
    to log in), and the link is remembered for it; a user who is logged in confirms joining its
    group (a POST: a page that merely opens a link changes nothing)."""
    invite, problem = invite_find(token=token)
    if invite is None:
        return render(request, "accounts/invite_invalid.html", {"problem": problem}, status=404)
    if not request.user.is_authenticated:
        request.session[INVITE_SESSION_KEY] = token
        return redirect("login" if settings.CHAT_REGISTRATION == "closed" else "register")
    if invite.group is None:
        messages.info(request, "That invite link is for new accounts; you have one already.")
        return redirect("chat")
    if request.method == "POST":
        _redeem(request, token)
        return redirect("chat")
    member = invite.group.members.filter(pk=request.user.pk).exists()
    return render(request, "accounts/invite_join.html", {"invite": invite, "member": member})


def _redeem(request: HttpRequest, token: str) -> None:
    """Use the link for the logged-in user and say what came of it on the next page."""
    try:
        invite, used = actions.invite_redeem(user=request.user, token=token)
    except ChatError as error:
        messages.warning(request, error.detail)
        return
    if invite.group is not None:
        done = "You joined" if used else "You are already in"
        messages.success(request, f"{done} the group {invite.group.name}.")


class LoginView(auth_views.LoginView):
    """Django's login, with the banned user told why (accounts.login), a muted one told until
    when (in their own time zone: static/accounts/localtime.js), and an invite link opened
    before logging in used at once."""

    form_class = LoginForm
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs) -> dict:
        return {**super().get_context_data(**kwargs), "invite": _pending_invite(self.request)[0]}

    def form_valid(self, form: LoginForm) -> HttpResponse:
        token = self.request.session.pop(INVITE_SESSION_KEY, None)
        response = super().form_valid(form)
        if token is not None:
            _redeem(self.request, token)
        mute = Mute.objects.filter(user=form.get_user(), until__gt=timezone.now()).first()
        if mute is not None:
            messages.warning(self.request, mute_notice(mute))
        return response


def mute_notice(mute: Mute):
    """The notice of a mute: its end in UTC, in a <time> that a script shows in the reader's zone."""
    reason = format_html(" ({})", mute.reason) if mute.reason else ""
    return format_html(
        'You are muted until <time datetime="{}" data-local>{} UTC</time>{}.',
        mute.until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        f"{mute.until.astimezone(UTC):%Y-%m-%d %H:%M}",
        reason,
    )


# ---- the account page, password change and reset ---------------------------------------------


@login_required
@sensitive_post_parameters("password")
def account(request: HttpRequest) -> HttpResponse:
    """Who you are, your email address (for resets), and the way to a new password."""
    form = EmailForm(request.user, request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Your email address is saved.")
        return redirect("account")
    owns_groups = request.user.owned_groups.exists()
    return render(request, "accounts/account.html", {"form": form, "owns_groups": owns_groups})


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's own, saving through the action. The new password ends every session and closes
    every socket of the user (accounts.sessions); Django then gives this browser a new session,
    which is recorded like a login's so that the next change or ban ends it too."""

    form_class = PasswordChangeForm
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("account")

    def form_valid(self, form: PasswordChangeForm) -> HttpResponse:
        response = super().form_valid(form)
        session_register(user=form.user, session_key=self.request.session.session_key)
        messages.success(self.request, "Your password is changed. Your other browsers have been logged out.")
        return response


class PasswordResetView(auth_views.PasswordResetView):
    """Django's own: the same answer whether or not an account has the address. Limited per
    client address and per email address (CHAT_PASSWORD_RESETS_PER_HOUR), alike for both."""

    template_name = "accounts/password_reset.html"
    email_template_name = "accounts/password_reset_email.txt"
    subject_template_name = "accounts/password_reset_subject.txt"
    success_url = reverse_lazy("password_reset_done")

    def form_valid(self, form) -> HttpResponse:
        per_hour = settings.CHAT_PASSWORD_RESETS_PER_HOUR
        by_address = limit_take("password reset", client_ip(self.request), per_hour=per_hour)
        by_email = limit_take("password reset email", form.cleaned_data["email"].casefold(), per_hour=per_hour)
        if not (by_address and by_email):
            return render(self.request, "accounts/password_reset_limited.html", {"limit": per_hour}, status=429)
        return super().form_valid(form)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    form_class = PasswordResetSetForm
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("password_reset_complete")
