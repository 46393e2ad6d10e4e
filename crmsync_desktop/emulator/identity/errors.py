"""Token-endpoint errors in the exact shape Entra ID returns them.

Connectors show ``error_description`` to users and branch on ``error`` / ``error_codes``; MSAL
passes the whole body through. So every failure carries an AADSTS code, a trace id, a correlation
id and a timestamp like the real service (AADSTS codes from Microsoft's public error reference).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from starlette.responses import JSONResponse

__all__ = ["AadError"]


@dataclass
class AadError(Exception):
    status: int
    error: str
    code: int  # the AADSTS number
    message: str

    def response(self, correlation_id: str | None = None) -> JSONResponse:
        trace_id = str(uuid.uuid4())
        correlation_id = correlation_id or str(uuid.uuid4())
        now = dt.datetime.now(dt.UTC)
        timestamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
        body = {
            "error": self.error,
            "error_description": (
                f"AADSTS{self.code}: {self.message} Trace ID: {trace_id} "
                f"Correlation ID: {correlation_id} Timestamp: {timestamp}"
            ),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.code}",
        }
        headers = {"x-ms-request-id": trace_id}
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="emulated-entra"'
        return JSONResponse(body, status_code=self.status, headers=headers)


# Constructors for the errors the emulator produces, named after what went wrong.


def tenant_not_found(tenant: str) -> AadError:
    return AadError(
        400,
        "invalid_request",
        90002,
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
        "signing into the correct cloud.",
    )


def app_not_found(client_id: str, tenant: str) -> AadError:
    return AadError(
        400,
        "unauthorized_client",
        700016,
        f"Application with identifier '{client_id}' was not found in the directory '{tenant}'.",
    )


def invalid_client_secret(client_id: str) -> AadError:
    return AadError(
        401,
        "invalid_client",
        7000215,
        "Invalid client secret provided. Ensure the secret being sent in the request is the client "
        f"secret value, not the client secret ID, for a secret added to app '{client_id}'.",
    )


def missing_client_credential() -> AadError:
    return AadError(
        401,
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    )


def bad_client_assertion(detail: str) -> AadError:
    return AadError(401, "invalid_client", 700027, f"Client assertion failed signature validation. {detail}")


def assertion_time_range() -> AadError:
    return AadError(401, "invalid_client", 700024, "Client assertion is not within its valid time range.")


def missing_parameter(name: str) -> AadError:
    return AadError(
        400, "invalid_request", 900144, f"The request body must contain the following parameter: '{name}'."
    )


def unsupported_grant(grant: str) -> AadError:
    return AadError(
        400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant}'."
    )


def invalid_scope(scope: str) -> AadError:
    return AadError(
        400,
        "invalid_scope",
        70011,
        f"The provided request must include a 'scope' input parameter. The provided value for the "
        f"input parameter 'scope' is not valid. The scope {scope} is not valid.",
    )


def client_credentials_needs_default(scope: str) -> AadError:
    return AadError(
        400,
        "invalid_scope",
        1002012,
        f"The provided value for scope {scope} is not valid. Client credential flows must have a scope "
        "value with /.default suffixed to the resource identifier (application ID URI).",
    )


def resource_not_found(resource: str, tenant: str) -> AadError:
    return AadError(
        400,
        "invalid_resource",
        500011,
        f"The resource principal named {resource} was not found in the tenant named {tenant}. This can "
        "happen if the application has not been installed by the administrator of the tenant or "
        "consented to by any user in the tenant.",
    )


def bad_credentials() -> AadError:
    return AadError(
        400, "invalid_grant", 50126, "Error validating credentials due to invalid username or password."
    )


def user_not_found(tenant: str) -> AadError:
    return AadError(
        400,
        "invalid_grant",
        50034,
        f"The user account {{EUII Hidden}} does not exist in the {tenant} directory. To sign into this "
        "application, the account must be added to the directory.",
    )


def public_client_required() -> AadError:
    return AadError(
        401,
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    )


def authorization_pending() -> AadError:
    return AadError(
        400,
        "authorization_pending",
        70016,
        "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
    )


def device_code_expired() -> AadError:
    return AadError(
        400,
        "expired_token",
        70020,
        "The provided value for the input parameter 'device_code' is not valid. This device code has "
        "expired.",
    )


def bad_device_code() -> AadError:
    return AadError(
        400, "invalid_grant", 70000, "The provided value for the input parameter 'device_code' is not valid."
    )


def authorization_declined() -> AadError:
    return AadError(400, "authorization_declined", 70000, "The user denied the authorization request.")


def bad_refresh_token() -> AadError:
    return AadError(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")


def refresh_token_expired() -> AadError:
    return AadError(400, "invalid_grant", 700082, "The refresh token has expired due to inactivity.")


def bad_auth_code() -> AadError:
    return AadError(
        400,
        "invalid_grant",
        70008,
        "The provided authorization code or refresh token has expired due to inactivity. Send a new "
        "interactive authorization request for this user and resource.",
    )


def pkce_mismatch() -> AadError:
    return AadError(
        400,
        "invalid_grant",
        501481,
        "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
    )


def redirect_mismatch(client_id: str) -> AadError:
    return AadError(
        400,
        "invalid_request",
        50011,
        f"The redirect URI specified in the request does not match the redirect URIs configured for "
        f"the application '{client_id}'.",
    )
