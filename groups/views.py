"""The owner's invite links page: make, copy and revoke the links of the groups they own.

Admins make and revoke links of any group in the admin (accounts.admin.InviteAdmin).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts import actions
from accounts.forms import InviteForm
from accounts.selectors import invites_with_uses
from chatsite.errors import ChatError
from groups.models import ChatGroup
from groups.selectors import group_owned_get


def _owned(request: HttpRequest, group_id: int) -> ChatGroup:
    try:
        return group_owned_get(user=request.user, group_id=group_id)
    except ChatError as error:
        raise Http404(error.detail) from None


@login_required
def invites_index(request: HttpRequest) -> HttpResponse:
    """The groups you own, each with a link to its invite links; `?group=<name>` goes straight
    to that group's (the chat names groups, not ids)."""
    owned = ChatGroup.objects.filter(owner=request.user.pk).order_by("name")
    name = request.GET.get("group")
    if name is not None:
        group = owned.filter(name=name[:64]).first()
        if group is None:
            raise Http404("No such group of yours.")
        return redirect("group-invites", group_id=group.pk)
    return render(request, "groups/invites_index.html", {"groups": owned})


@login_required
def group_invites(request: HttpRequest, group_id: int) -> HttpResponse:
    group = _owned(request, group_id)
    form = InviteForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            actions.invite_create(
                actor=request.user, group=group, valid_for=form.valid_for, max_uses=form.cleaned_data["uses"]
            )
        except ChatError as error:
            form.add_error(None, error.detail)
        else:
            messages.success(request, "A new invite link is ready: copy it below.")
            return redirect("group-invites", group_id=group.pk)
    now = timezone.now()
    invites = [
        (invite, request.build_absolute_uri(reverse("invite", args=[invite.token])), _state(invite, now))
        for invite in invites_with_uses().filter(group=group)
    ]
    context = {"group": group, "form": form, "invites": invites}
    return render(request, "groups/invites.html", context, status=400 if form.errors else 200)


def _state(invite, now) -> str:
    """Why a link no longer works ("" while it does)."""
    if invite.revoked is not None:
        return "revoked"
    if invite.expires <= now:
        return "expired"
    return "used up" if invite.use_total >= invite.max_uses else ""


@login_required
@require_POST
def group_invite_revoke(request: HttpRequest, group_id: int, invite_id: int) -> HttpResponse:
    group = _owned(request, group_id)
    invite = group.invites.filter(pk=invite_id).first()
    if invite is None:
        raise Http404("No such invite link.")
    actions.invite_revoke(actor=request.user, invite=invite)
    messages.success(request, "The link is revoked: it no longer works.")
    return redirect("group-invites", group_id=group.pk)
