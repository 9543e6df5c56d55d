from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from accounts import actions
from accounts.forms import AdminAddUserForm, AdminChangeUserForm
from accounts.models import AuditEntry
from chatsite.admin_actions import (
    ModerationMixin,
    ReadOnlyAdminMixin,
    moderation_action,
)
from chatsite.errors import ChatError

User = get_user_model()


def _each(action, **fixed):
    def apply(*, actor, queryset, **kwargs):
        for user in queryset:
            action(actor=actor, user=user, **fixed, **kwargs)
        return len(queryset)

    return apply


admin.site.unregister(User)


@admin.register(User)
class UserAdmin(ModerationMixin, DjangoUserAdmin):
    add_form, form = AdminAddUserForm, AdminChangeUserForm
    list_display = ("username", "is_active", "muted_until", "is_staff", "last_login", "date_joined")
    list_select_related = ("mute",)
    actions = [
        moderation_action(name="ban", description="Ban (deactivate) selected users", apply=_each(actions.user_ban)),
        moderation_action(name="unban", description="Unban selected users", apply=_each(actions.user_unban)),
        moderation_action(
            name="mute", description="Mute selected users", apply=_each(actions.user_mute), with_duration=True
        ),
        moderation_action(name="unmute", description="Unmute selected users", apply=_each(actions.user_unmute)),
    ]

    @admin.display(description="muted until")
    def muted_until(self, user):
        mute = getattr(user, "mute", None)
        return mute.until if mute else None

    def save_model(self, request, obj, form, change):
        """Deactivating a user here is a ban (sockets closed, audit entry), not a silent flag change."""
        if change and "is_active" in form.changed_data:
            action = actions.user_unban if obj.is_active else actions.user_ban
            obj.is_active = not obj.is_active  # the action makes the change
            try:
                action(actor=request.user, user=obj, reason="changed on the user's page")
            except ChatError as error:
                self.message_user(request, error.detail, messages.ERROR)
        super().save_model(request, obj, form, change)


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: the log is written by the moderation actions and never edited."""

    list_display = ("created", "actor", "action", "target", "reason")
    list_filter = ("action",)
    search_fields = ("target", "reason", "actor__username")
    date_hierarchy = "created"
    list_select_related = ("actor",)
