from __future__ import annotations

from django import forms


class TrainSegmentationForm(forms.Form):
    k = forms.IntegerField(
        required=False,
        min_value=2,
        max_value=20,
        label="Number of clusters (optional)",
        help_text="Leave empty to let the silhouette rule choose k among 2–10.",
    )
    cutoff = forms.DateField(
        required=False,
        label="Data cut-off (optional)",
        help_text="Transactions before this day count. Default: the day after the last transaction.",
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def job_params(self) -> dict:
        data = self.cleaned_data
        return {
            "k": data.get("k"),
            "cutoff": data["cutoff"].isoformat() if data.get("cutoff") else None,
        }
