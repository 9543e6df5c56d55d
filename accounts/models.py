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


class UsernameKey(models.Model):
    """chatsite.names.name_key of a username, kept by a post_save signal (accounts.validators).

    auth.User cannot get a column, so the key lives here; its unique index lets sign-up refuse
    a look-alike of an existing name without reading every user.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="username_key")
    key = models.CharField(max_length=255, unique=True)

    def __str__(self) -> str:
        return self.key
