from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm, UserCreationForm

from accounts.validators import UsernameRulesMixin


class RegisterForm(UsernameRulesMixin, UserCreationForm):
    """Django's own sign-up form: username rules and the configured password validators."""

    class Meta(UserCreationForm.Meta):
        fields = ("username",)


class AdminAddUserForm(UsernameRulesMixin, AdminUserCreationForm):
    """The admin's "add user" form, with the same username rules as sign-up."""


class AdminChangeUserForm(UsernameRulesMixin, UserChangeForm):
    """The admin's user page: a rename gets the same username rules."""
