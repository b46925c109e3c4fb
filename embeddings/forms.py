"""Forms of the Lookalikes pages: the audience builder and the (admin) training form."""

from __future__ import annotations

import math

from django import forms

MAX_SIZE = 5_000
MAX_SEED_IDS = 50_000
SEED_CHOICES = [("segment", "An RFM segment"), ("cluster", "A K-Means cluster"), ("top_clv", "The top N by CLV"),
                ("ids", "A list of customer ids (paste or upload)")]


class BuilderForm(forms.Form):
    seed_type = forms.ChoiceField(choices=SEED_CHOICES, initial="segment", label="Seed")
    segment = forms.ChoiceField(required=False, choices=[])
    cluster = forms.TypedChoiceField(required=False, choices=[], coerce=int, empty_value=None)
    top_n = forms.IntegerField(required=False, min_value=1, max_value=MAX_SEED_IDS, initial=100, label="Top N by CLV")
    ids = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3, "placeholder": "One id per line, "
                                                                       "or separated by commas"}),
                          label="Customer ids")
    ids_file = forms.FileField(required=False, label="…or upload a CSV / text file of ids (first column)")
    size = forms.IntegerField(min_value=1, max_value=MAX_SIZE, initial=500, label="Audience size")
    exclude_seed = forms.BooleanField(required=False, initial=True, label="Leave the seed out")
    min_p_alive = forms.FloatField(required=False, min_value=0.0, max_value=1.0, label="Min. P(alive)",
                                   widget=forms.NumberInput(attrs={"step": "0.05", "placeholder": "0–1"}))
    country = forms.ChoiceField(required=False, choices=[])

    def __init__(self, *args, segments=(), clusters=(), countries=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["segment"].choices = [(s, s) for s in segments]
        self.fields["cluster"].choices = [(str(c), f"{c}: {name}") for c, name in clusters]
        self.fields["country"].choices = [("", "Any country"), *[(c, c) for c in countries]]

    def clean_min_p_alive(self):
        value = self.cleaned_data.get("min_p_alive")
        if value is not None and not math.isfinite(value):
            raise forms.ValidationError("Must be a number between 0 and 1.")
        return value

    def clean(self):
        data = super().clean()
        kind = data.get("seed_type")
        if kind == "segment" and not data.get("segment"):
            self.add_error("segment", "Choose a segment (train the segmentation first if none is listed).")
        if kind == "cluster" and data.get("cluster") is None:
            self.add_error("cluster", "Choose a cluster.")
        if kind == "top_clv" and not data.get("top_n"):
            self.add_error("top_n", "How many top customers?")
        if kind == "ids":
            ids = parse_ids(data.get("ids") or "")
            upload = data.get("ids_file")
            if upload:
                if upload.size > 5 * 1024 * 1024:
                    self.add_error("ids_file", "At most 5 MB.")
                else:
                    try:
                        text = upload.read().decode("utf-8-sig")
                    except UnicodeDecodeError:
                        self.add_error("ids_file", "Not a UTF-8 text or CSV file.")
                        text = ""
                    ids += parse_ids("\n".join(line.split(",")[0] for line in text.splitlines()), header=True)
            ids = list(dict.fromkeys(ids))
            if not ids:
                self.add_error("ids", "Paste or upload at least one customer id.")
            elif len(ids) > MAX_SEED_IDS:
                self.add_error("ids", f"At most {MAX_SEED_IDS:,} ids.")
            data["id_list"] = ids
        return data


def parse_ids(text: str, header: bool = False) -> list[str]:
    parts = [p.strip().strip('"') for chunk in text.splitlines() for p in chunk.replace(";", ",").split(",")]
    ids = [p for p in parts if p and len(p) <= 64]
    if header and ids and ids[0].lower() in {"customer_id", "customerid", "customer id", "id"}:
        ids = ids[1:]
    return ids


class SaveAudienceForm(forms.Form):
    name = forms.CharField(max_length=120, label="Audience name")
    description = forms.CharField(max_length=1000, required=False)


class TrainForm(forms.Form):
    epochs = forms.IntegerField(required=False, min_value=1, max_value=200, label="Epochs",
                                help_text="Default from settings.")
    dim = forms.IntegerField(required=False, min_value=4, max_value=256, label="Dimensions",
                             help_text="Default from settings.")
