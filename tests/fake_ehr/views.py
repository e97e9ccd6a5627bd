"""The Fake EHR: SMART discovery, an authorize endpoint that stands for an EHR user already
signed in (django-oauth-toolkit issues the code), the token endpoint with fault injection,
and a small FHIR API over ``state.RESOURCES``."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider.oauth2_backends import get_oauthlib_core
from oauth2_provider.views import AuthorizationView, TokenView

from . import state

EHR_USERNAME = "ehr-dr-1"


def _base(request) -> str:
    return request.build_absolute_uri("/ehr").rstrip("/")


@login_not_required
def smart_configuration(request):
    if not state.BEHAVIOUR["well_known"]:
        return HttpResponse("not found", status=404)
    base = _base(request)
    capabilities = [
        "launch-ehr",
        "launch-standalone",
        "client-confidential-symmetric",
        "context-ehr-patient",
        "context-standalone-patient",
        "sso-openid-connect",
        "permission-v1",
    ]
    if state.BEHAVIOUR["permission_v2"]:
        capabilities.append("permission-v2")
    return JsonResponse(
        {
            "issuer": f"{base}/o",
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "jwks_uri": f"{base}/o/.well-known/jwks.json",
            "code_challenge_methods_supported": ["S256"],
            "capabilities": capabilities,
        }
    )


@login_not_required
def openid_configuration(request):
    base = _base(request)
    return JsonResponse({"issuer": f"{base}/o", "jwks_uri": f"{base}/o/.well-known/jwks.json"})


@login_not_required
def metadata(request):
    state.REQUESTS.append(request.get_full_path())
    base = _base(request)
    return JsonResponse(
        {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "rest": [
                {
                    "mode": "server",
                    "security": {
                        "extension": [
                            {
                                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                                "extension": [
                                    {"url": "authorize", "valueUri": f"{base}/authorize"},
                                    {"url": "token", "valueUri": f"{base}/token"},
                                ],
                            }
                        ]
                    },
                }
            ],
        }
    )


class FakeAuthorize(AuthorizationView):
    """Stands for the EHR's sign-in and consent: the EHR user is already signed in and
    approves; only S256 PKCE is accepted, and ``aud`` must be this FHIR server."""

    def dispatch(self, request, *args, **kwargs):
        request.user = get_user_model().objects.get(username=EHR_USERNAME)
        return super().dispatch(request, *args, **kwargs)

    def get(self, request, *args, **kwargs):
        redirect_uri = request.GET.get("redirect_uri", "")
        if request.GET.get("code_challenge_method") != "S256" or not request.GET.get(
            "code_challenge"
        ):
            return HttpResponse("PKCE S256 required", status=400)
        if request.GET.get("aud", "").rstrip("/") != state.BEHAVIOUR["aud"]:
            return HttpResponse("aud is not this FHIR server", status=400)
        scopes, credentials = self.validate_authorization_request(request)
        granted = [s for s in scopes if s not in state.BEHAVIOUR["drop_scopes"]]
        uri, _headers, _body, _status = self.create_authorization_response(
            request=request, scopes=" ".join(granted), credentials=credentials, allow=True
        )
        assert uri.startswith(redirect_uri)
        return HttpResponseRedirect(uri)


authorize = login_not_required(FakeAuthorize.as_view())
_token_view = TokenView.as_view()


@csrf_exempt
@login_not_required
def token(request):
    fault = state.BEHAVIOUR["token_fault"]
    if fault == 500:
        return HttpResponse("internal error", status=500)
    if fault == "garbage":
        return HttpResponse("<html>not json</html>", content_type="application/json")
    return _token_view(request)


def _authorised(request) -> bool:
    valid, _r = get_oauthlib_core().verify_request(request, scopes=[])
    return valid


def _fault():
    fault = state.BEHAVIOUR["fhir_fault"]
    if fault == 500:
        return HttpResponse("internal error", status=500)
    if fault == "garbage":
        return HttpResponse("\x00garbage{", content_type="application/fhir+json")
    return None


def _bundle(entries: list[dict]) -> JsonResponse:
    return JsonResponse(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(entries),
            "entry": [{"resource": r, "search": {"mode": "match"}} for r in entries],
        },
        content_type="application/fhir+json",
    )


@login_not_required
def patient_read(request, pk: str):
    state.REQUESTS.append(request.get_full_path())
    if not _authorised(request):
        return HttpResponse("unauthorised", status=401)
    if (fault := _fault()) is not None:
        return fault
    resource = state.RESOURCES["Patient"].get(pk)
    if resource is None:
        return JsonResponse({"resourceType": "OperationOutcome"}, status=404)
    return JsonResponse(resource, content_type="application/fhir+json")


def _codes(resource: dict) -> set[str]:
    return {
        f"{c.get('system')}|{c.get('code')}"
        for c in (resource.get("code") or resource.get("medicationCodeableConcept") or {}).get(
            "coding", []
        )
    }


@login_not_required
def search(request, resource_type: str):
    state.REQUESTS.append(request.get_full_path())
    if not _authorised(request):
        return HttpResponse("unauthorised", status=401)
    if (fault := _fault()) is not None:
        return fault
    patient = request.GET.get("patient", "")
    codes = {c for c in request.GET.get("code", "").split(",") if c}
    intents = {i for i in request.GET.get("intent", "").split(",") if i}
    found = []
    for resource in state.RESOURCES.get(resource_type, {}).values():
        if (
            resource.get("_served_as_patient", resource["subject"]["reference"])
            != f"Patient/{patient}"
        ):
            continue
        if codes and not (_codes(resource) & codes):
            continue
        if intents and resource.get("intent") not in intents:
            continue
        found.append({k: v for k, v in resource.items() if k != "_served_as_patient"})
    return _bundle(found)


@login_not_required
def launch_page(request):
    """The EHR's own page: the app in an iframe (EHR launch), and, to show the difference,
    one of the app's ordinary pages in another iframe (which must refuse to be framed)."""
    from urllib.parse import urlencode

    app = request.GET.get("app", "")
    query = urlencode({"iss": f"{_base(request)}/fhir", "launch": "launch-ctx-1"})
    html = (
        "<!doctype html><html lang='en'><head><title>Fake EHR</title></head><body>"
        "<h1>Fake EHR chart</h1>"
        f"<iframe id='app' name='app' title='TDM app' src='{app}/smart/launch?{query}' "
        "width='1000' height='700'></iframe>"
        f"<iframe id='site' name='site' title='TDM site' src='{app}/accounts/login/' "
        "width='600' height='300'></iframe>"
        "</body></html>"
    )
    response = HttpResponse(html)
    # This page belongs to the EHR, not to the app: the app's policy does not apply to it.
    response._csp_exempt = True
    response.xframe_options_exempt = True
    return response
