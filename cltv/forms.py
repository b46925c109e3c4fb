"""The CLTV page's settings form: CLV recomputed (closed form) for the active model."""

from __future__ import annotations

from django import forms


class CLVSettingsForm(forms.Form):
    horizon_days = forms.IntegerField(min_value=1, max_value=3650, label="Horizon (days)")
    annual_discount_rate = forms.FloatField(min_value=0, max_value=1, label="Annual discount rate")
    margin = forms.FloatField(min_value=0, max_value=1000, label="Margin (share of revenue)")
