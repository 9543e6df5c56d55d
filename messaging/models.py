from django.conf import settings
from django.db import models, transaction
from django.db.models import Q


class MessageQuerySet(models.QuerySet):
    def bulk_create(self, objs, *args, **kwargs):
        """Messages without a `seq` take one each, in one transaction with their rows; texts
        without their `html` are rendered (messaging.render)."""
        objs = list(objs)
        for message in objs:
            message.render_if_needed()
        unnumbered = [message for message in objs if message.seq is None]
        if not unnumbered:
            return super().bulk_create(objs, *args, **kwargs)
        from messaging.seq import seq_take

        with transaction.atomic():
            last = seq_take(len(unnumbered))
            for seq, message in enumerate(unnumbered, start=last - len(unnumbered) + 1):
                message.seq = seq
            return super().bulk_create(objs, *args, **kwargs)


class Message(models.Model):
    """A chat message, to one user (private) or to one group; exactly one of the two is set."""

    objects = MessageQuerySet.as_manager()

    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sent_messages")
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="received_messages"
    )
    group = models.ForeignKey(
        "groups.ChatGroup", null=True, blank=True, on_delete=models.CASCADE, related_name="messages"
    )
    text = models.TextField(blank=True)
    # `text` rendered to sanitized HTML (messaging.render), once, when it is stored or edited.
    html = models.TextField(blank=True)
    is_image = models.BooleanField(default=False)
    client_id = models.CharField(max_length=64, null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    # The change cursor of the message's last change (messaging.seq): what a resume replays by.
    seq = models.BigIntegerField(db_index=True)
    edited = models.DateTimeField(null=True, blank=True)
    # The message this one answers. No database constraint: a removed original leaves its id
    # here, so the reply can say "original message removed" (its row is gone, not nulled).
    reply_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )

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

    def render_if_needed(self) -> None:
        """A text stored without its `html` (an import, a shell) is rendered here; the actions
        render their own."""
        if self.text and not self.html and not self.is_image:
            from messaging.render import render_text

            self.html = render_text(self.text)

    def save(self, *args, **kwargs) -> None:
        """A message saved without a `seq` (the admin, a shell) takes one, in one transaction
        with its row; the actions hand theirs over (messaging.seq)."""
        self.render_if_needed()
        if self.seq is not None:
            return super().save(*args, **kwargs)
        from messaging.seq import seq_take

        with transaction.atomic():
            self.seq = seq_take()
            super().save(*args, **kwargs)


class MessageEdit(models.Model):
    """An earlier version of an edited message, for moderators (users see only the current
    text). Goes with the message when it is removed."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="edits")
    text = models.TextField()
    # When this version was written: the message's sending, or its previous edit.
    written = models.DateTimeField()
    replaced = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["message", "id"]

    def __str__(self) -> str:
        return f"earlier version of message {self.message_id}"


class Reaction(models.Model):
    """One user's emoji on one message (messaging.actions.reaction_set)."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reactions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    emoji = models.CharField(max_length=32)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["message", "user", "emoji"], name="reaction_once"),
        ]

    def __str__(self) -> str:
        return f"{self.emoji} on message {self.message_id}"


class SeqCounter(models.Model):
    """The one row holding the last `Seq` handed out (messaging.seq)."""

    value = models.BigIntegerField(default=0)


class Tombstone(models.Model):
    """What is left of a removed message, so that a resume can say `Removed`. Its text and
    image are gone with its row; this keeps who could see it (ids, no foreign keys to users:
    a deleted account's messages leave tombstones too) and when it went (`seq`)."""

    message_id = models.BigIntegerField(primary_key=True)
    seq = models.BigIntegerField(db_index=True)
    group = models.ForeignKey("groups.ChatGroup", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    sender_id = models.IntegerField(null=True)
    recipient_id = models.IntegerField(null=True)
    removed_by = models.CharField(max_length=150, blank=True)
    removed = models.DateTimeField(auto_now_add=True)
    # Its sender's `ClientId`: a retry of a removed message is refused, not stored again.
    client_id = models.CharField(max_length=64, null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["sender_id", "client_id"], condition=Q(client_id__isnull=False), name="tombstone_client_id"
            ),
        ]

    def __str__(self) -> str:
        return f"removed message {self.message_id}"


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
