"""Forms of the uplift pages: profit inputs, member-list filters and the (admin) training form."""

from __future__ import annotations

import math

from django import forms

from uplift.models import UpliftScore
from uplift.pipeline import ProfitInputs
from uplift.selectors import MemberFilters


class FiniteFloatField(forms.FloatField):
    def clean(self, value):
        number = super().clean(value)
        if number is not None and not math.isfinite(number):
            raise forms.ValidationError("Enter a finite number.")
        return number


class ProfitForm(forms.Form):
    contact_cost = FiniteFloatField(min_value=0, max_value=1_000_000, label="Contact cost (per customer)",
                                    widget=forms.NumberInput(attrs={"step": "0.05"}))
    incentive_cost = FiniteFloatField(min_value=0, max_value=1_000_000, label="Incentive cost (per redemption)",
                                      widget=forms.NumberInput(attrs={"step": "0.5"}))
    margin = FiniteFloatField(min_value=0, max_value=1, label="Margin (share of revenue)",
                              widget=forms.NumberInput(attrs={"step": "0.05"}))

    def inputs(self, default: ProfitInputs) -> ProfitInputs:
        if not self.is_bound or not self.is_valid():
            return default
        return ProfitInputs(**self.cleaned_data)


class MemberFilterForm(forms.Form):
    group = forms.ChoiceField(choices=[("", "Any group"), *UpliftScore.Group.choices], required=False)
    contact = forms.ChoiceField(choices=[("", "Any recommendation"), ("yes", "Contact"), ("no", "Don't contact")],
                                required=False)
    country = forms.CharField(required=False, max_length=64)
    q = forms.CharField(required=False, max_length=64, label="Customer id",
                        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Customer id starts with…"}))

    def filters(self) -> MemberFilters:
        data = self.cleaned_data if self.is_valid() else {}
        return MemberFilters(group=data.get("group") or "", contact=data.get("contact") or "",
                             country=data.get("country") or "", search=data.get("q") or "")


class TrainForm(forms.Form):
    campaign = forms.CharField(required=False, max_length=64, label="Campaign",
                               help_text="Default: the latest campaign with both a contacted and a control group.")
