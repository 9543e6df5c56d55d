from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib.auth import forms as auth_forms
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm, UserCreationForm

from accounts import actions
from accounts.models import Invite
from accounts.validators import UsernameRulesMixin


class RegisterForm(UsernameRulesMixin, UserCreationForm):
    """Django's own sign-up form: username rules and the configured password validators, and
    an optional email address for password resets."""

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")
        labels = {"email": "Email (optional)"}
        help_texts = {"email": "Only used to send you a link if you forget your password."}


class AdminAddUserForm(UsernameRulesMixin, AdminUserCreationForm):
    """The admin's "add user" form, with the same username rules as sign-up."""


class AdminChangeUserForm(UsernameRulesMixin, UserChangeForm):
    """The admin's user page: a rename gets the same username rules."""


# ---- a user's own password and email address -------------------------------------------------


class _SavedByAction:
    """Django's password forms, saving through accounts.actions.user_password_change."""

    how = ""

    def save(self, commit: bool = True):
        actions.user_password_change(user=self.user, password=self.cleaned_data["new_password1"], how=self.how)
        return self.user


class PasswordChangeForm(_SavedByAction, auth_forms.PasswordChangeForm):
    how = "change password"


class PasswordResetSetForm(_SavedByAction, auth_forms.SetPasswordForm):
    how = "reset password"


class EmailForm(forms.Form):
    """A new email address, confirmed with the password: whoever sets it can reset the password."""

    email = forms.EmailField(required=False, label="Email", help_text="Where a password reset link is sent.")
    password = forms.CharField(label="Current password", strip=False, widget=forms.PasswordInput)

    def __init__(self, user, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["email"].initial = user.email

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        if not self.user.check_password(password):
            raise forms.ValidationError("That is not your current password.", code="password_incorrect")
        return password

    def save(self) -> None:
        actions.user_email_set(user=self.user, email=self.cleaned_data["email"])


# ---- invite links ---------------------------------------------------------------------------


class InviteForm(forms.Form):
    """How long a new link works and how many may use it (the group comes from the page)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Bounded from the settings of the moment, before a timedelta could overflow.
        self.fields["days"] = forms.IntegerField(
            label="Valid for (days)", min_value=1, max_value=settings.CHAT_INVITE_MAX_DAYS, initial=7
        )
        self.fields["uses"] = forms.IntegerField(
            label="Uses",
            min_value=1,
            max_value=settings.CHAT_INVITE_MAX_USES,
            initial=30,
            help_text="How many people may use it.",
        )

    @property
    def valid_for(self) -> timedelta:
        return timedelta(days=self.cleaned_data["days"])


class InviteAdminForm(InviteForm, forms.ModelForm):
    """The admin's "add invite": a group (or none), days and uses; the action does the rest."""

    class Meta:
        model = Invite
        fields = ("group",)
