"""Take `auth.change_user` back from the Moderators group.

Earlier versions granted it, and with it Django's user page let a moderator make themselves
superuser. The group itself is made after migrating (accounts.apps.ensure_moderators_group), which
only adds permissions, so installs that already have the group need this.
"""

from django.db import migrations


def drop_change_user(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    permission = Permission.objects.filter(content_type__app_label="auth", codename="change_user").first()
    group = Group.objects.filter(name="Moderators").first()
    if permission is not None and group is not None:
        group.permissions.remove(permission)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_usersession"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(drop_change_user, migrations.RunPython.noop)]
