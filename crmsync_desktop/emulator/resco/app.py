"""The emulated Resco Cloud server: routing, organization selection, Basic auth, admin endpoints.

Organizations are selected like the real service (resco.md §7.2): path style
``/odata/v4/{org}/…`` and ``/rest/v1/data/{org}/{Method}``, or domain style where the first label
of the ``Host`` header names the organization (``contoso.localhost`` → ``contoso``).

The metadata service (``/rest/v1/metadata/{org}/entities…``) and provisioning (``/_emulator/orgs``)
are the emulator's own JSON design: Resco's real metadata API is not public (docs/emulator.md).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from crmsync_desktop.emulator.resco.cloud import RescoCloud
from crmsync_desktop.emulator.resco.faults import FaultConfig, FaultInjector
from crmsync_desktop.emulator.resco.odata import handle_odata
from crmsync_desktop.emulator.resco.rest import handle_rest, rest_error
from crmsync_desktop.emulator.resco.schema import EntityDef, FieldDef, SchemaError
from crmsync_desktop.emulator.resco.store import NotFound, RescoOrg

__all__ = ["create_app"]

REALM = 'Basic realm="Resco Cloud"'


def _json_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": str(status), "message": message}}, status_code=status)


def _host_org(request: Request, cloud: RescoCloud) -> str | None:
    host = (request.headers.get("host") or "").rsplit(":", 1)[0].lower()
    label = host.split(".", 1)[0]
    if "." in host and not host.replace(".", "").isdigit() and label in cloud:
        return label
    return None


def _split_org(request: Request, cloud: RescoCloud, path: str) -> tuple[RescoOrg, str, bool]:
    """(organization, rest of path, org named in path?) — host style wins when the host names an org."""
    host_org = _host_org(request, cloud)
    if host_org is not None:
        return cloud.get(host_org), path, False
    name, _, rest = path.strip("/").partition("/")
    if not name:
        raise NotFound("The organization is missing from the URL.")
    return cloud.get(name), rest, True


def _basic_user(request: Request, org: RescoOrg) -> str | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        username, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return org.check_password(unquote(username), password)


def _unauthorized() -> Response:
    return Response("Unauthorized", status_code=401, headers={"WWW-Authenticate": REALM})


def create_app(cloud: RescoCloud, faults: FaultConfig | None = None) -> FaultInjector:
    """An ASGI app serving every organization in ``cloud``; ``.config`` / ``.configure`` drive faults."""

    async def odata(request: Request) -> Response:
        try:
            org, rest, in_path = _split_org(request, cloud, request.path_params.get("path", ""))
        except NotFound as exc:
            return _json_error(404, str(exc))
        user_id = _basic_user(request, org)
        if user_id is None:
            return _unauthorized()
        return await handle_odata(request, org, user_id, rest, in_path)

    async def data(request: Request) -> Response:
        try:
            org, rest, _ = _split_org(request, cloud, request.path_params.get("path", ""))
        except NotFound as exc:
            return rest_error(404, "NotFound", str(exc))
        user_id = _basic_user(request, org)
        if user_id is None:
            return _unauthorized()
        return await handle_rest(request, org, user_id, rest.strip("/"))

    async def metadata(request: Request) -> Response:
        try:
            org, rest, _ = _split_org(request, cloud, request.path_params.get("path", ""))
            if _basic_user(request, org) is None:
                return _unauthorized()
            return await _metadata(request, org, rest.strip("/").split("/"))
        except NotFound as exc:
            return _json_error(404, str(exc))
        except SchemaError as exc:
            return _json_error(409 if "already exists" in str(exc) else 400, str(exc))

    async def orgs(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"value": [_org_json(request, cloud.get(n)) for n in cloud.names()]})
        body: dict[str, Any] = await request.json()
        try:
            org = cloud.provision(
                str(body.get("name", "")),
                username=str(body.get("username", "admin")),
                password=str(body["password"]),
                fullname=str(body.get("fullname", "Administrator")),
            )
        except KeyError:
            return _json_error(400, "'password' is required.")
        except SchemaError as exc:
            return _json_error(409 if "already exists" in str(exc) else 400, str(exc))
        return JSONResponse(_org_json(request, org), status_code=201)

    async def org_detail(request: Request) -> Response:
        name = request.path_params["org"]
        try:
            if request.method == "DELETE":
                cloud.delete(name)
                return Response(status_code=204)
            return JSONResponse(_org_json(request, cloud.get(name)))
        except NotFound as exc:
            return _json_error(404, str(exc))

    async def org_users(request: Request) -> Response:
        body: dict[str, Any] = await request.json()
        try:
            org = cloud.get(request.path_params["org"])
            user_id = org.add_user(
                str(body["username"]),
                str(body["password"]),
                str(body.get("fullname", body["username"])),
                body.get("email"),
            )
        except NotFound as exc:
            return _json_error(404, str(exc))
        except KeyError:
            return _json_error(400, "'username' and 'password' are required.")
        return JSONResponse({"id": user_id, "username": body["username"]}, status_code=201)

    async def fault_settings(request: Request) -> Response:
        if request.method == "DELETE":
            injector.reset()
        elif request.method in ("PUT", "PATCH", "POST"):
            try:
                injector.configure(await request.json())
            except (ValueError, TypeError) as exc:
                return _json_error(400, str(exc))
        return JSONResponse({**injector.config.as_dict(), "counts": dict(injector.counts)})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "organizations": cloud.names()})

    methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]
    app = Starlette(
        routes=[
            Route("/_emulator/health", health),
            Route("/_emulator/orgs", orgs, methods=["GET", "POST"]),
            Route("/_emulator/orgs/{org}", org_detail, methods=["GET", "DELETE"]),
            Route("/_emulator/orgs/{org}/users", org_users, methods=["POST"]),
            Route("/_emulator/faults", fault_settings, methods=["GET", "PUT", "PATCH", "POST", "DELETE"]),
            Route("/odata/v4", odata, methods=methods),
            Route("/odata/v4/{path:path}", odata, methods=methods),
            Route("/rest/v1/data/{path:path}", data, methods=methods),
            Route("/rest/v1/metadata/{path:path}", metadata, methods=methods),
        ]
    )
    injector = FaultInjector(app, faults)
    return injector


def _org_json(request: Request, org: RescoOrg) -> dict[str, Any]:
    base = f"{request.url.scheme}://{request.url.netloc}"
    return {
        "name": org.name,
        "organization_id": org.organization_id,
        "odata_url": f"{base}/odata/v4/{org.name}/",
        "rest_url": f"{base}/rest/v1/data/{org.name}",
        "metadata_url": f"{base}/rest/v1/metadata/{org.name}",
        "row_version": org.max_row_version(),
    }


async def _metadata(request: Request, org: RescoOrg, parts: list[str]) -> Response:
    """``entities`` [GET, POST] · ``entities/{e}`` [GET, PATCH, DELETE] · ``entities/{e}/fields`` [GET, POST]
    · ``entities/{e}/fields/{f}`` [GET, PATCH, DELETE]."""
    method = request.method
    if parts[0] != "entities" or len(parts) > 4 or (len(parts) == 3 and parts[2] != "fields"):
        raise NotFound(f"Unknown metadata resource '{'/'.join(parts)}'.")
    if len(parts) == 1:
        if method == "GET":
            return JSONResponse({"value": [e.to_json() for e in org.entities.values()]})
        if method == "POST":
            entity = org.create_entity(EntityDef.from_json(await request.json()))
            return JSONResponse(entity.to_json(), status_code=201)
    elif len(parts) == 2:
        if method == "GET":
            return JSONResponse(org.entity(parts[1]).to_json())
        if method == "DELETE":
            org.delete_entity(parts[1])
            return Response(status_code=204)
        if method == "PATCH":
            return JSONResponse(org.update_entity(parts[1], await request.json()).to_json())
    elif len(parts) == 3:
        if method == "GET":
            return JSONResponse({"value": [f.to_json() for f in org.entity(parts[1]).fields.values()]})
        if method == "POST":
            return JSONResponse(
                org.add_field(parts[1], FieldDef.from_json(await request.json())).to_json(), status_code=201
            )
    else:
        if method == "GET":
            return JSONResponse(org.entity(parts[1]).field(parts[3]).to_json())
        if method == "DELETE":
            org.delete_field(parts[1], parts[3])
            return Response(status_code=204)
        if method == "PATCH":
            return JSONResponse(org.update_field(parts[1], parts[3], await request.json()).to_json())
    return _json_error(405, f"Method {method} is not allowed here.")
