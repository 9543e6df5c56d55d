from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from chatsite.names import name_key


class ChatGroup(models.Model):
    """A named group chat. Names are any Unicode; the channel layer only ever sees the id."""

    name = models.CharField(max_length=64, unique=True)
    # chatsite.names.name_key(name), set on save: look-alike names share it, so the second is
    # refused. Null only for a group that already collided when the column was added.
    name_key = models.CharField(max_length=255, unique=True, null=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="owned_groups")
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="chat_groups", blank=True
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "chat group"

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """A rename in the admin gets a form error, not a database error, on a look-alike."""
        twin = ChatGroup.objects.filter(name_key=name_key(self.name)).exclude(pk=self.pk).first()
        if twin is not None:
            raise ValidationError({"name": f"This name is too like the existing group '{twin.name}'."})

    def save(self, *args, **kwargs) -> None:
        update_fields = kwargs.get("update_fields")
        if update_fields is None or "name" in update_fields:
            self.name_key = name_key(self.name)
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "name_key"}
        super().save(*args, **kwargs)

    @property
    def layer_group(self) -> str:
        return layer_group_for(self.pk)


class Membership(models.Model):
    """One member of one group (the table Django made for `members` before it had a model)."""

    id = models.AutoField(primary_key=True)
    chatgroup = models.ForeignKey(ChatGroup, on_delete=models.CASCADE)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    # The change cursor (messaging.seq) of the join; 0 for members from before there was one.
    seq = models.BigIntegerField(default=0)

    class Meta:
        db_table = "groups_chatgroup_members"
        unique_together = [("chatgroup", "user")]  # as Django made it

    def __str__(self) -> str:
        return f"{self.user_id} in {self.chatgroup_id}"


def layer_group_for(group_id: int) -> str:
    return f"chat.group.{group_id}"


def group_id_of(layer_group: str) -> int:
    """The id in a `layer_group_for` name."""
    return int(layer_group.rsplit(".", 1)[1])
