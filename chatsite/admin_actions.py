"""Admin actions that ask "why?" (and, for a mute, "how long?") before calling a domain action.

Every moderation action goes through one of these, so each gets a confirmation page, a reason
for the audit log, the `accounts.moderate` permission check, and a readable error message.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Callable

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from accounts.selectors import user_is_moderator
from chatsite.errors import ChatError

DURATIONS = [(60, "1 hour"), (60 * 24, "24 hours"), (60 * 24 * 7, "7 days"), (15, "15 minutes")]


class ReasonForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), max_length=500, help_text="Written to the audit log."
    )


class MuteForm(ReasonForm):
    minutes = forms.TypedChoiceField(choices=DURATIONS, coerce=int, initial=60, label="Mute for")


def moderation_action(
    *, name: str, description: str, apply: Callable[..., int], with_duration: bool = False
) -> Callable[[admin.ModelAdmin, HttpRequest, QuerySet], Any]:
    """Build an admin action: confirm with a reason, then `apply(actor=, queryset=, reason=[, duration=])`."""
    form_class = MuteForm if with_duration else ReasonForm

    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet):
        form = form_class(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            extra = {"duration": timedelta(minutes=form.cleaned_data["minutes"])} if with_duration else {}
            try:
                count = apply(actor=request.user, queryset=queryset, reason=form.cleaned_data["reason"], **extra)
            except ChatError as error:
                modeladmin.message_user(request, error.detail, messages.ERROR)
                return None
            modeladmin.message_user(request, f"{description}: done for {count}.", messages.SUCCESS)
            return None
        context = {
            **modeladmin.admin_site.each_context(request),
            "title": description,
            "opts": modeladmin.model._meta,
            "queryset": queryset,
            "form": form,
            "action": name,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/moderation_confirm.html", context)

    action.__name__ = name
    return admin.action(description=description, permissions=["moderate"])(action)


class ModerationMixin:
    """`permissions=["moderate"]` on actions checks the `accounts.moderate` permission."""

    def has_moderate_permission(self, request: HttpRequest) -> bool:
        return user_is_moderator(request.user)


class ReadOnlyAdminMixin:
    """Shown in the admin, never added, edited or deleted there (logs and reports)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
