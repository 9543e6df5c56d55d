from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from chatsite.admin_actions import (
    ModerationMixin,
    ReadOnlyAdminMixin,
    moderation_action,
)
from chatsite.errors import ChatError
from messaging import actions
from messaging.models import Message, MessageEdit, Reaction, Report


def _remove(*, actor, queryset, reason):
    return actions.messages_remove(actor=actor, message_ids=list(queryset.values_list("pk", flat=True)), reason=reason)


def _remove_reported(*, actor, queryset, reason):
    ids = [pk for pk in queryset.values_list("message_id", flat=True) if pk]
    removed = actions.messages_remove(actor=actor, message_ids=ids, reason=reason)
    actions.reports_resolve(actor=actor, report_ids=list(queryset.values_list("pk", flat=True)), reason=reason)
    return removed


class MessageEditInline(ReadOnlyAdminMixin, admin.TabularInline):
    """Earlier versions of an edited message: moderators see them, users only the current text."""

    model = MessageEdit
    fields = ("written", "text", "replaced")
    readonly_fields = fields
    extra = 0
    verbose_name = "earlier version"


class ReactionInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Reaction
    fields = ("emoji", "user", "created")
    readonly_fields = fields
    extra = 0


@admin.register(Message)
class MessageAdmin(ModerationMixin, admin.ModelAdmin):
    """Built for long lists: related names in the one list query, no full COUNT, no image bytes."""

    list_display = ("id", "sender", "conversation", "created", "preview", "thumbnail")
    list_display_links = ("id", "preview")
    list_select_related = ("sender", "recipient", "group")
    list_filter = ("is_image", "created")
    search_fields = ("text", "sender__username")
    date_hierarchy = "created"
    show_full_result_count = False
    list_per_page = 100
    ordering = ("-id",)
    raw_id_fields = ("sender", "recipient", "group")
    readonly_fields = (
        "sender",
        "recipient",
        "group",
        "text",
        "is_image",
        "client_id",
        "created",
        "edited",
        "replying_to",
        "thumbnail",
    )
    actions = [moderation_action(name="remove_messages", description="Remove selected messages", apply=_remove)]

    @admin.display(description="reply to")
    def replying_to(self, message):
        if message.reply_to_id is None:
            return ""
        if not Message.objects.filter(pk=message.reply_to_id).exists():
            return f"message {message.reply_to_id} (removed)"
        url = reverse("admin:messaging_message_change", args=[message.reply_to_id])
        return format_html('<a href="{}">message {}</a>', url, message.reply_to_id)

    @admin.display(description="conversation")
    def conversation(self, message):
        return f"# {message.group.name}" if message.group_id else f"→ {message.recipient.username}"

    @admin.display(description="text")
    def preview(self, message):
        if message.is_image:
            return "[image]"
        return message.text if len(message.text) <= 80 else message.text[:79] + "…"

    @admin.display(description="image")
    def thumbnail(self, message):
        if not message.is_image:
            return ""
        return format_html(
            '<a href="/images/{0}/"><img src="/images/{0}/thumb/" alt="" style="max-height:48px"></a>', message.pk
        )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return self.has_moderate_permission(request)

    def get_inlines(self, request, obj):
        return [MessageEditInline, ReactionInline] if self.has_moderate_permission(request) else []

    def get_actions(self, request):
        available = super().get_actions(request)
        available.pop("delete_selected", None)
        return available

    def delete_model(self, request, obj):
        try:
            actions.messages_remove(actor=request.user, message_ids=[obj.pk], reason="deleted on the message's page")
        except ChatError as error:
            self.message_user(request, error.detail, messages.ERROR)


class ReportStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("open", "Open"), ("resolved", "Resolved")]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(resolved__isnull=True)
        if self.value() == "resolved":
            return queryset.filter(resolved__isnull=False)
        return queryset


@admin.register(Report)
class ReportAdmin(ModerationMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "message_link", "reported_text", "reporter", "reason", "created", "resolved")
    list_select_related = ("reporter", "message", "resolved_by")
    list_filter = (ReportStatusFilter, "created")
    search_fields = ("message_text", "reason", "reporter__username")
    readonly_fields = ("message_link", "message_text", "reporter", "reason", "created", "resolved", "resolved_by")
    fields = readonly_fields
    actions = [
        moderation_action(
            name="resolve_reports",
            description="Resolve selected reports",
            apply=lambda *, actor, queryset, reason: actions.reports_resolve(
                actor=actor, report_ids=list(queryset.values_list("pk", flat=True)), reason=reason
            ),
        ),
        moderation_action(
            name="remove_reported", description="Remove the reported messages and resolve", apply=_remove_reported
        ),
    ]

    @admin.display(description="message")
    def message_link(self, report):
        if report.message_id is None:
            return "(removed)"
        url = reverse("admin:messaging_message_change", args=[report.message_id])
        return format_html('<a href="{}">message {}</a>', url, report.message_id)

    @admin.display(description="text when reported")
    def reported_text(self, report):
        text = report.message_text
        return text if len(text) <= 80 else text[:79] + "…"
