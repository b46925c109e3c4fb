"""Forms of the churn pages: at-risk list filters and the (admin) training form."""

from __future__ import annotations

from django import forms

from churn.models import ChurnScore
from churn.selectors import AtRiskFilters


class AtRiskFilterForm(forms.Form):
    band = forms.ChoiceField(choices=[("", "Any band"), *ChurnScore.Band.choices], required=False)
    min_probability = forms.FloatField(required=False, min_value=0.0, max_value=1.0, label="Min. probability",
                                       widget=forms.NumberInput(attrs={"step": "0.05", "placeholder": "0–1"}))
    country = forms.CharField(required=False, max_length=64)
    q = forms.CharField(required=False, max_length=64, label="Search",
                        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Part of an id or country"}))
    order = forms.CharField(required=False, max_length=32)

    def filters(self) -> AtRiskFilters:
        data = self.cleaned_data if self.is_valid() else {}
        return AtRiskFilters(band=data.get("band") or "", min_probability=data.get("min_probability"),
                             country=data.get("country") or "", search=data.get("q") or "")

    def sort_order(self) -> str:
        return (self.cleaned_data.get("order") or "") if self.is_valid() else ""


class TrainForm(forms.Form):
    cutoff = forms.DateField(required=False, label="Data cut-off", widget=forms.DateInput(attrs={"type": "date"}),
                             help_text="Default: the day after the last transaction.")
    horizon_days = forms.IntegerField(initial=90, min_value=7, max_value=365, label="Horizon (days)",
                                      help_text="Churn = no purchase within this many days after the cut-off.")
