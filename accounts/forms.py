from django.contrib.auth.forms import UserCreationForm


class RegisterForm(UserCreationForm):
    """Django's own sign-up form: username rules and the configured password validators."""

    class Meta(UserCreationForm.Meta):
        fields = ("username",)
