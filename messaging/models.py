from django.conf import settings
from django.db import models
from django.db.models import Q


class Message(models.Model):
    """A chat message, to one user (private) or to one group; exactly one of the two is set."""

    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sent_messages")
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="received_messages"
    )
    group = models.ForeignKey(
        "groups.ChatGroup", null=True, blank=True, on_delete=models.CASCADE, related_name="messages"
    )
    text = models.TextField(blank=True)
    is_image = models.BooleanField(default=False)
    client_id = models.CharField(max_length=64, null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["group", "id"], name="msg_group_id"),
            models.Index(fields=["sender", "recipient", "id"], name="msg_pair_id"),
            models.Index(fields=["recipient", "sender", "id"], name="msg_pair_rev_id"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(recipient__isnull=True, group__isnull=False)
                | Q(recipient__isnull=False, group__isnull=True),
                name="msg_one_conversation",
            ),
            models.UniqueConstraint(
                fields=["sender", "client_id"], condition=Q(client_id__isnull=False), name="msg_unique_client_id"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sender_id} -> {self.recipient_id or self.group_id}: {self.text[:40]}"


class ReadMarker(models.Model):
    """How far a user has read one conversation. It only ever moves forward."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="read_markers")
    peer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    group = models.ForeignKey("groups.ChatGroup", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    last_read_id = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "peer"], condition=Q(peer__isnull=False), name="read_unique_peer"),
            models.UniqueConstraint(
                fields=["user", "group"], condition=Q(group__isnull=False), name="read_unique_group"
            ),
        ]


class Connection(models.Model):
    """One open WebSocket. Presence is "has at least one row", shared by every server process."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="connections")
    channel_name = models.CharField(max_length=200, unique=True)
    opened = models.DateTimeField(auto_now_add=True)


class Image(models.Model):
    """The picture of an image message, kept apart so that listing messages never loads its bytes.

    Stored re-encoded (no EXIF or other metadata), with a small WebP thumbnail for the chat view.
    Its primary key is the message's, so `/images/<message id>/` needs no extra lookup.
    """

    message = models.OneToOneField(Message, primary_key=True, on_delete=models.CASCADE, related_name="image")
    data = models.BinaryField()
    content_type = models.CharField(max_length=32)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    thumbnail = models.BinaryField()
    thumbnail_type = models.CharField(max_length=32, default="image/webp")

    def __str__(self) -> str:
        return f"image of message {self.message_id} ({self.width}×{self.height}, {self.content_type})"


class Report(models.Model):
    """A user's report of a message, for moderators to look at in the admin."""

    message = models.ForeignKey(Message, null=True, on_delete=models.SET_NULL, related_name="reports")
    message_text = models.TextField(blank=True, help_text="The message as it was when reported.")
    reporter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reports")
    reason = models.CharField(max_length=500, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    resolved = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["resolved", "-created"]
        constraints = [
            models.UniqueConstraint(fields=["message", "reporter"], name="report_once_per_reporter"),
        ]

    def __str__(self) -> str:
        return f"report of message {self.message_id} by {self.reporter}"
