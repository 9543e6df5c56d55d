import copy
from functools import partial

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from accounts import actions
from accounts.forms import AdminAddUserForm, AdminChangeUserForm, InviteAdminForm
from accounts.models import AuditEntry, Invite, InviteUse
from chatsite.admin_actions import (
    ModerationMixin,
    ReadOnlyAdminMixin,
    moderation_action,
)
from chatsite.errors import ChatError

User = get_user_model()
# What staff who are not superusers see of a user: no privileges, no password.
PLAIN_FIELDSETS = (
    (None, {"fields": ("username",)}),
    ("Personal info", {"fields": ("first_name", "last_name", "email")}),
    ("Status", {"fields": ("is_active",)}),
    ("Important dates", {"fields": ("last_login", "date_joined")}),
)


def _each(action, **fixed):
    def apply(*, actor, queryset, **kwargs):
        for user in queryset:  # a selection with one untouchable user is refused as a whole
            actions.moderation_target_check(actor=actor, user=user)
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
    readonly_fields = ("last_login", "date_joined")  # records, not settings
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

    def get_fieldsets(self, request, obj=None):
        """Only a superuser sees (and so can post) privileges and the password link."""
        if obj is None or request.user.is_superuser:
            return super().get_fieldsets(request, obj)
        return PLAIN_FIELDSETS

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        """Staff may view a superuser's or other staff's page, never change it."""
        if not super().has_change_permission(request, obj):
            return False
        if obj is None:
            return True
        try:
            actions.user_act_check(actor=request.user, user=obj)
        except ChatError:
            return False
        return True

    def has_delete_permission(self, request, obj=None):
        """Not oneself, and superusers or other staff only by a superuser (as user_delete)."""
        if obj is not None:
            try:
                actions.user_act_check(actor=request.user, user=obj)
            except ChatError:
                return False
            if obj.pk == request.user.pk:
                return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request, obj):
        """Deleting a user is an action: groups, messages, sockets and the audit log follow."""
        actions.user_delete(actor=request.user, user=obj, reason="deleted in the admin")

    def delete_queryset(self, request, queryset):
        for user in queryset:
            actions.user_delete(actor=request.user, user=user, reason="deleted in the admin")

    def save_model(self, request, obj, form, change):
        """Every change goes through an action and the audit log. Deactivating a user here is a
        ban (sockets closed), not a silent flag change."""
        try:
            if not change:
                actions.user_add(actor=request.user, user=obj)
                return
            if "is_active" in form.changed_data:
                action = actions.user_unban if obj.is_active else actions.user_ban
                obj.is_active = not obj.is_active  # the action makes the change
                action(actor=request.user, user=obj, reason="changed on the user's page")
            changes = {name: form.cleaned_data[name] for name in form.changed_data if name != "is_active"}
            if changes:
                actions.user_update(actor=request.user, user=obj, changes=changes, reason="changed on the user's page")
        except ChatError as error:
            self.message_user(request, error.detail, messages.ERROR)

    def save_related(self, request, form, formsets, change):
        """Groups and permissions were set by `user_update`, with the rest of the change."""

    def user_change_password(self, request, id, form_url=""):
        """Superusers only: setting another's password takes over their account.

        Django's view builds `self.change_password_form(user, data)`; a copy of this admin per
        request hands it a form that knows the actor, so the password is set by the action.
        """
        if not request.user.is_superuser:
            raise PermissionDenied
        audited = copy.copy(self)
        audited.change_password_form = partial(AuditedPasswordChangeForm, actor=request.user)
        return DjangoUserAdmin.user_change_password(audited, request, id, form_url)


class AuditedPasswordChangeForm(AdminPasswordChangeForm):
    def __init__(self, user, *args, actor, **kwargs):
        super().__init__(user, *args, **kwargs)
        self.actor = actor

    def save(self, commit=True):
        password = self.cleaned_data["password1"] if self.cleaned_data["set_usable_password"] else None
        actions.user_password_set(actor=self.actor, user=self.user, password=password, reason="set in the admin")
        return self.user


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(DjangoGroupAdmin):
    """Whoever edits a group's permissions can give their own group everything: superusers only."""

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: the log is written by the moderation actions and never edited."""

    list_display = ("created", "actor", "action", "target", "reason")
    list_filter = ("action",)
    search_fields = ("target", "reason", "actor__username")
    date_hierarchy = "created"
    list_select_related = ("actor",)


class InviteUseInline(admin.TabularInline):
    """Who used the link, and when: a record, never edited."""

    model = InviteUse
    verbose_name = "use"
    verbose_name_plural = "uses"
    extra = 0
    can_delete = False
    fields = readonly_fields = ("username", "new_account", "created")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Invite)
class InviteAdmin(admin.ModelAdmin):
    """Make a link (a group or none, days, uses), see its uses, revoke it. Links are made by
    `invite_create` and stopped by `invite_revoke`, never edited or deleted."""

    list_display = ("__str__", "group", "created_by", "created", "use_total", "max_uses", "state")
    list_select_related = ("group", "created_by")
    search_fields = ("group__name", "created_by__username", "uses__username")
    date_hierarchy = "created"
    inlines = [InviteUseInline]
    actions = ["revoke"]
    ADD_FIELDS = ("group", "days", "uses")
    CHANGE_FIELDS = ("link", "group", "created_by", "created", "expires", "max_uses", "revoked")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(use_total=Count("uses", distinct=True))

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = InviteAdminForm
            kwargs["fields"] = ("group",)  # days and uses are the form's own fields
        return super().get_form(request, obj, change=change, **kwargs)

    def get_inlines(self, request, obj=None):
        return self.inlines if obj is not None else []

    def get_fields(self, request, obj=None):
        return self.CHANGE_FIELDS if obj is not None else self.ADD_FIELDS

    def get_readonly_fields(self, request, obj=None):
        return self.CHANGE_FIELDS if obj is not None else ()

    @admin.display(description="link")
    def link(self, invite):
        path = reverse("invite", args=[invite.token])
        return format_html('<a href="{}">{}</a> (copy the link address)', path, path)

    @admin.display(description="used", ordering="use_total")
    def use_total(self, invite):
        return invite.use_total

    @admin.display(description="state")
    def state(self, invite):
        if invite.revoked is not None:
            return "revoked"
        if invite.expires <= timezone.now():
            return "expired"
        return "used up" if invite.use_total >= invite.max_uses else "works"

    def save_model(self, request, obj, form, change):
        """Only adding saves (everything is read-only after), through the action."""
        if change:
            return
        try:
            made = actions.invite_create(
                actor=request.user,
                group=form.cleaned_data["group"],
                valid_for=form.valid_for,
                max_uses=form.cleaned_data["uses"],
            )
        except ChatError as error:
            raise PermissionDenied(error.detail) from None
        for field in Invite._meta.concrete_fields:
            setattr(obj, field.attname, getattr(made, field.attname))
        obj._state.adding = False

    def has_delete_permission(self, request, obj=None):
        return False  # revoke: the uses stay on record

    @admin.action(description="Revoke selected invite links", permissions=["change"])
    def revoke(self, request, queryset):
        try:
            count = sum(actions.invite_revoke(actor=request.user, invite=invite) for invite in queryset)
        except ChatError as error:
            self.message_user(request, error.detail, messages.ERROR)
            return
        self.message_user(request, f"Revoked {count} invite links.", messages.SUCCESS)
