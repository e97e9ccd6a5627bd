"""Registering an EHR server (superusers). The client secret and the private key are
write-only: the form never shows them back, and leaving them empty keeps the stored ones."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from .models import AuthMethod, SmartServer, SmartUserLink


class SmartServerForm(forms.ModelForm):
    issuer = forms.URLField(
        label="Issuer (FHIR base URL)",
        max_length=300,
        assume_scheme="https",
        help_text="Exactly the iss the EHR sends, e.g. https://ehr.example.org/fhir",
    )
    client_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored, never shown again. Leave empty to keep the current one.",
    )
    private_key_pem = forms.CharField(
        label="Private key (PEM)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "autocomplete": "off"}),
        help_text="Stored, never shown again. Leave empty to keep the current one.",
    )

    class Meta:
        model = SmartServer
        fields = [
            "name",
            "issuer",
            "client_id",
            "auth_method",
            "client_secret",
            "private_key_pem",
            "key_id",
            "mrn_identifier_system",
            "user_claim",
            "frame_origins",
            "active",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The stored values never travel back to the browser.
        self.initial["client_secret"] = ""
        self.initial["private_key_pem"] = ""

    def clean_client_secret(self) -> str:
        return self.cleaned_data["client_secret"] or (
            self.instance.client_secret if self.instance.pk else ""
        )

    def clean_private_key_pem(self) -> str:
        value = self.cleaned_data["private_key_pem"].strip()
        if not value:
            return self.instance.private_key_pem if self.instance.pk else ""
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        try:
            key = load_pem_private_key(value.encode(), password=None)
        except (ValueError, TypeError):
            raise forms.ValidationError("not a PEM private key without a password") from None
        if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
            raise forms.ValidationError("an RSA key of at least 2048 bits is required")
        return value

    def clean_frame_origins(self) -> str:
        origins = self.cleaned_data["frame_origins"].split()
        bad = [o for o in origins if not o.startswith("https://") or o.count("/") != 2]
        if bad:
            raise forms.ValidationError(f"value '{bad[0]}': an origin is https://host[:port]")
        return " ".join(origins)

    def clean(self):
        data = super().clean()
        method = data.get("auth_method")
        if method == AuthMethod.SECRET and not data.get("client_secret"):
            self.add_error("client_secret", "required for client secret authentication")
        if method == AuthMethod.PRIVATE_KEY_JWT and not data.get("private_key_pem"):
            self.add_error("private_key_pem", "required for private key JWT authentication")
        return data


class SmartUserLinkInline(admin.TabularInline):
    model = SmartUserLink
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(SmartServer)
class SmartServerAdmin(admin.ModelAdmin):
    form = SmartServerForm
    list_display = ["name", "issuer", "client_id", "auth_method", "active"]
    list_filter = ["active"]
    inlines = [SmartUserLinkInline]
    readonly_fields = ["created_at"]

    def has_delete_permission(self, request, obj=None):
        # Launches and imported records point at the server: deactivate it instead.
        return False
