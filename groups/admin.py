from django.contrib import admin, messages
from django.db.models import Count

from chatsite.admin_actions import ModerationMixin, moderation_action
from chatsite.errors import ChatError
from groups import actions
from groups.models import ChatGroup


def _delete_groups(*, actor, queryset, reason):
    for group in queryset:
        actions.group_delete(user=actor, group=group, reason=reason)
    return len(queryset)


class MemberInline(admin.TabularInline):
    """Members, shown read-only: joining and leaving are actions with live events, not edits."""

    model = ChatGroup.members.through
    verbose_name = "member"
    verbose_name_plural = "members"
    extra = 0
    can_delete = False
    readonly_fields = ("user",)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ChatGroup)
class ChatGroupAdmin(ModerationMixin, admin.ModelAdmin):
    list_display = ("name", "owner", "member_count", "created")
    list_select_related = ("owner",)
    search_fields = ("name", "owner__username")
    date_hierarchy = "created"
    readonly_fields = ("owner", "created")
    inlines = [MemberInline]
    actions = [moderation_action(name="delete_groups", description="Delete selected groups", apply=_delete_groups)]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(member_total=Count("members"))

    @admin.display(description="members", ordering="member_total")
    def member_count(self, group):
        return group.member_total

    def get_actions(self, request):
        available = super().get_actions(request)
        available.pop("delete_selected", None)  # deletion goes through the moderation action
        return available

    def has_add_permission(self, request):
        return False  # groups are created in the chat, where members hear of it

    def has_delete_permission(self, request, obj=None):
        return self.has_moderate_permission(request)

    def delete_model(self, request, obj):
        try:
            actions.group_delete(user=request.user, group=obj, reason="deleted on the group's page")
        except ChatError as error:
            self.message_user(request, error.detail, messages.ERROR)
