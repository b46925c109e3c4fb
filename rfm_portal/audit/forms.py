from django import forms


class AuditFilterForm(forms.Form):
    action = forms.CharField(required=False, max_length=48)
    actor = forms.CharField(required=False, max_length=150, label="User")
    target_type = forms.CharField(required=False, max_length=64, label="Object type")
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("'From' is after 'To'.")
        return data
