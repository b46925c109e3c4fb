"""The admin's import upload form."""

from __future__ import annotations

from django import forms

from . import importing
from .models import ImportJob


class ImportUploadForm(forms.Form):
    file = forms.FileField(help_text="CSV (any common delimiter, UTF-8 or latin-1) or .xlsx.")
    kind = forms.ChoiceField(choices=ImportJob.Kind.choices, initial=ImportJob.Kind.TRANSACTIONS)
    skip_invalid = forms.BooleanField(
        required=False, label="Skip invalid rows", help_text="Import the valid rows and report the rest."
    )
    dayfirst = forms.BooleanField(required=False, label="Dates are day first (1/12/2010 = 1 December)")
    mapping = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Only for layouts not recognised automatically: one target=SourceColumn per line.",
    )

    def clean_mapping(self) -> dict[str, str]:
        try:
            return importing.parse_mapping(self.cleaned_data["mapping"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
