from django.conf import settings
from django.db import models


class Mute(models.Model):
    """A user who may not send messages until `until` (set by a moderator, with a reason)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mute")
    until = models.DateTimeField()
    reason = models.CharField(max_length=500, blank=True)

    def __str__(self) -> str:
        return f"{self.user} muted until {self.until:%Y-%m-%d %H:%M} UTC"


class AuditEntry(models.Model):
    """One moderation action: who did what, to what, when and why. Never edited."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=40, db_index=True)
    target = models.CharField(max_length=300, help_text="What the action was applied to, as it was then.")
    reason = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit log"
        permissions = [("moderate", "Can run moderation actions (ban, mute, remove messages, delete groups)")]

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.target}"


class UserSession(models.Model):
    """A Django session key a user logged in with (or opened a socket with).

    It makes a user's sessions findable without decoding every session in the store: a ban, a
    password change or a deletion ends exactly these. Rows are written at login and when a socket
    opens, and deleted with the session; a stale row is harmless (its session is gone).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_sessions")
    session_key = models.CharField(max_length=40, unique=True)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"session of {self.user_id} since {self.created:%Y-%m-%d %H:%M}"


class Registration(models.Model):
    """One account created, and from which address: what the hourly sign-up limit counts.

    Rows older than an hour are deleted as new ones come in (accounts.views.register).
    """

    ip = models.CharField(max_length=45)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["ip", "created"])]

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M} {self.ip}"


class UsernameKey(models.Model):
    """chatsite.names.name_key of a username, kept by a post_save signal (accounts.validators).

    auth.User cannot get a column, so the key lives here; its unique index lets sign-up refuse
    a look-alike of an existing name without reading every user.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="username_key")
    key = models.CharField(max_length=255, unique=True)

    def __str__(self) -> str:
        return self.key


class Invite(models.Model):
    """A link that lets people register (even when registration is by invite only), and, with a
    group, puts each of them in that group, existing users too (accounts.actions.invite_redeem).

    The token is the link's secret: random (`secrets.token_urlsafe`), kept as it is so that its
    owner can copy the link again. It works until `expires`, for `max_uses` uses, and stops at
    once when revoked. A group's links go with the group.
    """

    token = models.CharField(max_length=64, unique=True, editable=False)
    group = models.ForeignKey(
        "groups.ChatGroup",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="invites",
        help_text="The group each person who uses the link joins; empty: none.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField()
    max_uses = models.PositiveIntegerField()
    revoked = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        where = f" to {self.group}" if self.group_id else ""
        return f"invite{where} until {self.expires:%Y-%m-%d %H:%M} UTC"


class InviteUse(models.Model):
    """One use of an invite: who (kept by name too, should the account go), when, and whether
    it made their account or brought an existing one into the link's group."""

    invite = models.ForeignKey(Invite, on_delete=models.CASCADE, related_name="uses")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    username = models.CharField(max_length=150)
    new_account = models.BooleanField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created", "id"]

    def __str__(self) -> str:
        return f"{self.username} at {self.created:%Y-%m-%d %H:%M} UTC"
