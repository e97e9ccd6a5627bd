"""The Fake EHR's OAuth validator: SMART's launch context (``patient``) in the token answer
and ``fhirUser`` in the id_token, as a real EHR would add them."""

from oauth2_provider.oauth2_validators import OAuth2Validator

from . import state


class FakeEhrValidator(OAuth2Validator):
    # fhirUser is released with the fhirUser scope, as SMART says.
    oidc_claim_scope = {**OAuth2Validator.oidc_claim_scope, "fhirUser": "fhirUser"}

    def get_additional_claims(self, request):
        return {"fhirUser": state.BEHAVIOUR["fhir_user"]}

    def finalize_id_token(self, id_token, token, token_handler, request):
        if state.BEHAVIOUR["id_token_aud"]:
            id_token["aud"] = state.BEHAVIOUR["id_token_aud"]
        return super().finalize_id_token(id_token, token, token_handler, request)

    def save_bearer_token(self, token, request, *args, **kwargs):
        result = super().save_bearer_token(token, request, *args, **kwargs)
        # oauthlib serialises this same dict as the token response.
        if not state.BEHAVIOUR["omit_patient"]:
            token["patient"] = state.BEHAVIOUR["patient"]
        return result
