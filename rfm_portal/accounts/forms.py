"""Input validation for the admin pages (the HTML counterpart of DRF input serializers)."""

from __future__ import annotations

from django import forms

from .models import User


class UserCreateForm(forms.Form):
    username = forms.CharField(max_length=150)
    email = forms.EmailField(required=False)
    role = forms.ChoiceField(choices=User.Role.choices, initial=User.Role.ANALYST)
    password = forms.CharField(widget=forms.PasswordInput, help_text="Initial password; share it securely.")


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=User.Role.choices)


class APIKeyCreateForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Which integration uses the key, e.g. 'Salesforce sync'.")
    expires_in_days = forms.IntegerField(
        required=False, min_value=1, max_value=3650, label="Expires in (days)", help_text="Leave empty for no expiry."
    )
