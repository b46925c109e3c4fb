"""Forms of the campaign pages: the campaign (audience, channels, money, holdout), review, templates, preview."""

from __future__ import annotations

import math
from typing import Any

from django import forms
from django.conf import settings

from campaigns import pipeline
from campaigns.models import Campaign, Goal, MessageTemplate
from embeddings import selectors as embeddings_selectors
from rfm_portal.customers.models import Audience
from uplift.models import UpliftScore


class FiniteFloatField(forms.FloatField):
    def clean(self, value):
        number = super().clean(value)
        if number is not None and not math.isfinite(number):
            raise forms.ValidationError("Enter a finite number.")
        return number


def _channel_fields() -> list[dict[str, Any]]:
    return [dict(c) for c in settings.CAMPAIGN_DEFAULT_CHANNELS]


class CampaignForm(forms.Form):
    name = forms.CharField(max_length=64, help_text="Outcomes are imported later under exactly this name.")
    goal = forms.ChoiceField(choices=Goal.choices)
    audience = forms.ModelChoiceField(queryset=Audience.objects.order_by("name"), required=False,
                                      empty_label="Every scored customer",
                                      help_text="A saved audience (lookalike builder, customer list).")
    segments = forms.MultipleChoiceField(required=False, widget=forms.SelectMultiple(attrs={"size": 6}),
                                         help_text="Only these RFM segments (none selected = any).")
    clusters = forms.TypedMultipleChoiceField(required=False, coerce=int,
                                              widget=forms.SelectMultiple(attrs={"size": 4}))
    min_churn_risk = FiniteFloatField(required=False, min_value=0, max_value=1, label="Churn risk at least")
    max_churn_risk = FiniteFloatField(required=False, min_value=0, max_value=1, label="Churn risk at most")
    min_clv = FiniteFloatField(required=False, min_value=0, label="Lifetime value at least")
    min_p_alive = FiniteFloatField(required=False, min_value=0, max_value=1, label="P(still a customer) at least")
    uplift_groups = forms.MultipleChoiceField(required=False, choices=UpliftScore.Group.choices,
                                              widget=forms.CheckboxSelectMultiple, label="Uplift groups")
    countries = forms.CharField(required=False, max_length=1000, help_text="Comma-separated; empty = any.")
    incentive_cost = FiniteFloatField(min_value=0, max_value=1_000_000, initial=2.0,
                                      label="Incentive cost (per redemption)")
    margin = FiniteFloatField(min_value=0, max_value=1, initial=0.4, label="Margin (share of revenue kept)")
    budget = FiniteFloatField(min_value=0.01, max_value=1e12, initial=1000.0)
    holdout_share = FiniteFloatField(min_value=0, max_value=0.5, initial=0.1,
                                     help_text="Share of the selected customers held back to measure the effect.")
    segment_caps = forms.CharField(required=False, max_length=2000, label="Caps per segment",
                                   help_text="e.g. Champions=500, Loyal=300 (at most that many contacts).")
    fatigue_days = forms.IntegerField(min_value=0, max_value=365, initial=settings.CAMPAIGN_FATIGUE_DAYS,
                                      label="Skip customers contacted in the last N days")
    offer = forms.CharField(required=False, max_length=200, help_text="Fills {{ offer }} in the message.")
    template = forms.ModelChoiceField(queryset=MessageTemplate.objects.order_by("name"), required=False,
                                      empty_label="The library's template for each segment")
    scheduled_for = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["segments"].choices = [(s, s) for s in embeddings_selectors.segment_names()]
        self.fields["clusters"].choices = [(c, name) for c, name in embeddings_selectors.cluster_choices()]
        self.channel_rows = []
        for c in _channel_fields():
            n = c["name"]
            self.fields[f"use_{n}"] = forms.BooleanField(required=False, initial=True, label=n.replace("_", " "))
            self.fields[f"cost_{n}"] = FiniteFloatField(required=False, min_value=0.0001, max_value=1_000_000,
                                                        initial=c["cost"], label="cost per contact")
            self.fields[f"factor_{n}"] = FiniteFloatField(required=False, min_value=0, max_value=5,
                                                          initial=c["effect_factor"], label="effect ×")
            self.channel_rows.append((self[f"use_{n}"], self[f"cost_{n}"], self[f"factor_{n}"]))

    @classmethod
    def initial_for(cls, campaign: Campaign) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": campaign.name, "goal": campaign.goal, "audience": campaign.audience_id,
            "segments": campaign.segments, "clusters": campaign.clusters, "incentive_cost": campaign.incentive_cost,
            "margin": campaign.margin, "budget": campaign.budget, "holdout_share": campaign.holdout_share,
            "segment_caps": ", ".join(f"{k}={v}" for k, v in (campaign.segment_caps or {}).items()),
            "fatigue_days": campaign.fatigue_days, "offer": campaign.offer, "template": campaign.template_id,
            "scheduled_for": campaign.scheduled_for, **{k: v for k, v in (campaign.filters or {}).items()
                                                        if k != "countries"},
            "countries": ", ".join((campaign.filters or {}).get("countries", [])),
        }
        chosen = {c["name"]: c for c in campaign.channels}
        for c in _channel_fields():
            n = c["name"]
            data[f"use_{n}"] = n in chosen
            data[f"cost_{n}"] = chosen.get(n, c)["cost"]
            data[f"factor_{n}"] = chosen.get(n, c)["effect_factor"]
        return data

    def clean_segment_caps(self) -> dict[str, int]:
        caps = {}
        for part in filter(None, (p.strip() for p in self.cleaned_data["segment_caps"].split(","))):
            name, sep, value = part.partition("=")
            if not sep or not value.strip().isdigit() or not name.strip():
                raise forms.ValidationError(f"“{part}” is not “Segment=number”.")
            caps[name.strip()] = int(value.strip())
        return caps

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        channels = []
        for c in _channel_fields():
            n = c["name"]
            if data.get(f"use_{n}"):
                if data.get(f"cost_{n}") is None:
                    self.add_error(f"cost_{n}", "Give the cost per contact of a channel you use.")
                    continue
                channels.append({"name": n, "cost": data[f"cost_{n}"],
                                 "effect_factor": data.get(f"factor_{n}") if data.get(f"factor_{n}") is not None
                                 else c["effect_factor"]})
        if not channels:
            raise forms.ValidationError("Choose at least one channel.")
        data["channels"] = channels
        lo, hi = data.get("min_churn_risk"), data.get("max_churn_risk")
        if lo is not None and hi is not None and lo > hi:
            self.add_error("max_churn_risk", "Must be at least the lower bound.")
        return data

    def campaign_fields(self) -> dict[str, Any]:
        d = self.cleaned_data
        filters = {k: d.get(k) for k in ("min_churn_risk", "max_churn_risk", "min_clv", "min_p_alive")}
        filters["uplift_groups"] = list(d.get("uplift_groups") or [])
        filters["countries"] = [c.strip() for c in (d.get("countries") or "").split(",") if c.strip()]
        return {
            "name": d["name"].strip(), "goal": d["goal"], "audience": d.get("audience"),
            "segments": list(d.get("segments") or []), "clusters": list(d.get("clusters") or []),
            "filters": {k: v for k, v in filters.items() if v not in (None, [], "")},
            "channels": d["channels"], "incentive_cost": d["incentive_cost"], "margin": d["margin"],
            "budget": d["budget"], "holdout_share": d["holdout_share"], "segment_caps": d["segment_caps"],
            "fatigue_days": d["fatigue_days"], "offer": d.get("offer") or "", "template": d.get("template"),
            "scheduled_for": d.get("scheduled_for"),
        }


class ReviewForm(forms.Form):
    comment = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


class MessageTemplateForm(forms.ModelForm):
    class Meta:
        model = MessageTemplate
        fields = ["name", "goal", "segment", "subject", "body"]
        widgets = {"body": forms.Textarea(attrs={"rows": 6})}

    def _check(self, field: str) -> str:
        value = self.cleaned_data.get(field) or ""
        try:
            pipeline.template_fields(value)
        except pipeline.TemplateError as error:
            raise forms.ValidationError(str(error)) from error
        return value

    def clean_subject(self) -> str:
        return self._check("subject")

    def clean_body(self) -> str:
        return self._check("body")


class PreviewForm(forms.Form):
    customer = forms.CharField(max_length=64, label="Customer id")
    template = forms.ModelChoiceField(queryset=MessageTemplate.objects.order_by("name"), required=False,
                                      empty_label="The campaign's template")
