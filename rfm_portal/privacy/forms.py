from django import forms


class ErasureConfirmForm(forms.Form):
    confirm = forms.CharField(max_length=64, label="Type the customer id to confirm",
                              help_text="Erasure cannot be undone.")

    def __init__(self, *args, external_id: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.external_id = external_id

    def clean_confirm(self) -> str:
        value = self.cleaned_data["confirm"].strip()
        if value != self.external_id:
            raise forms.ValidationError("That is not this customer's id; nothing was erased.")
        return value
