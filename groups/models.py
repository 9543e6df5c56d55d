from django.conf import settings
from django.db import models


class ChatGroup(models.Model):
    """A named group chat. Names are any Unicode; the channel layer only ever sees the id."""

    name = models.CharField(max_length=64, unique=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="owned_groups")
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="chat_groups", blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "chat group"

    def __str__(self) -> str:
        return self.name

    @property
    def layer_group(self) -> str:
        return layer_group_for(self.pk)


def layer_group_for(group_id: int) -> str:
    return f"chat.group.{group_id}"
