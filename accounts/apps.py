from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_migrate, post_save

MODERATOR_PERMISSIONS = [
    ("accounts", "auditentry", "moderate"),
    ("accounts", "auditentry", "view_auditentry"),
    ("auth", "user", "view_user"),
    ("groups", "chatgroup", "view_chatgroup"),
    ("messaging", "message", "view_message"),
    ("messaging", "messageedit", "view_messageedit"),  # earlier versions of edited messages
    ("messaging", "reaction", "view_reaction"),
    ("messaging", "report", "view_report"),
]


def ensure_moderators_group(app_config, using="default", **kwargs) -> None:
    """A "Moderators" auth group with what moderation in the admin needs; add staff to it.

    Viewing users is enough for the ban and mute actions; `change_user` is left out on purpose
    (migration 0002 takes it back from existing installs): moderators do not edit accounts.

    Runs after the last app has migrated, when every permission exists.
    """
    from django.apps import apps
    from django.contrib.auth.models import Group, Permission

    if app_config is not list(apps.get_app_configs())[-1]:
        return
    group, _ = Group.objects.get_or_create(name="Moderators")
    wanted = [
        Permission.objects.filter(content_type__app_label=app, content_type__model=model, codename=codename).first()
        for app, model, codename in MODERATOR_PERMISSIONS
    ]
    group.permissions.add(*[permission for permission in wanted if permission is not None])


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self) -> None:
        from accounts.validators import username_key_store

        post_migrate.connect(ensure_moderators_group, dispatch_uid="accounts.moderators")
        post_save.connect(username_key_store, sender=settings.AUTH_USER_MODEL, dispatch_uid="accounts.username_key")
        from accounts import sessions  # noqa: F401  (connects the receivers that end sessions)
