"""Resco Cloud data wire format: OData v4 rows <-> plain records, and the REST data-service calls.

Documented (resco.md §7.2/§7.3): OData root ``{base}/odata/v4/{org}/``, Basic auth, entity sets named
by entity logical name, keys written ``{entity}('{id}')``, ``@odata.etag`` on rows, server pages of
at most 1,000 rows with ``@odata.nextLink``; the REST data service at ``…/rest/v1/data`` with
``WhoAmI``, ``GetMaxRowVersion`` and ``Fetch`` (FetchXML) methods.

ASSUMED (not in any document we could read; the lead reconciles with docs/emulator.md):

* REST root is path-style ``{base}/rest/v1/data/{org}/`` (domain-style roots are configurable);
  bodies are JSON, not XML. ``POST WhoAmI`` -> ``{"UserId"|"SystemUserId", "BusinessUnitId",
  "OrganizationId"}``. ``POST GetMaxRowVersion`` -> a JSON number (or ``{"value": n}``).
  ``POST Fetch`` takes the FetchXML document as the body (``Content-Type: application/xml``) and
  answers like Dataverse's FetchXML endpoint: ``{"value": [...],
  "@Microsoft.Dynamics.CRM.morerecords": bool, "@Microsoft.Dynamics.CRM.fetchxmlpagingcookie": "<cookie …/>"}``.
* A lookup column is an OData property named after the attribute holding the target GUID, with the
  target entity in ``<attr>@Microsoft.Dynamics.CRM.lookuplogicalname`` (falling back to the
  field's single target); it is written as ``"<attr>@odata.bind": "<target>('<id>')"``.
* Every entity has a ``versionnumber`` RowVersion column that can be filtered and ordered in OData
  (``versionnumber gt N``); ``GetMaxRowVersion`` is the organization-wide maximum of it.
* Upsert = ``PATCH {entity}('{id}')`` (404 when missing) then ``POST {entity}`` with the id in the body.
* N:N links use OData ``$ref`` on a navigation property named after the relationship.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crmsync_desktop.sync.connectors.types import EntityMeta, FieldValue, LookupValue, Record

LOOKUP_ENTITY = "@Microsoft.Dynamics.CRM.lookuplogicalname"
ROW_VERSION = "versionnumber"


def key(entity: str, record_id: str) -> str:
    return f"{entity}('{record_id}')"


def record_from_wire(row: dict[str, Any], meta: EntityMeta, fields: Sequence[str]) -> Record:
    lookups = {f.logical_name: f for f in meta.fields if f.type.is_lookup}
    out: Record = {meta.primary_id: str(row.get(meta.primary_id) or "").lower()}
    for name in fields:
        if name == meta.primary_id:
            continue
        value = row.get(name)
        if name in lookups and value is not None:
            target = row.get(name + LOOKUP_ENTITY)
            if not target:
                targets = lookups[name].targets
                target = targets[0] if len(targets) == 1 else ""
            out[name] = LookupValue(str(target), str(value).lower())
        else:
            out[name] = value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
    return out


def body_from_record(record: Record, meta: EntityMeta, *, include_id: bool) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name, value in record.items():
        if name == meta.primary_id and not include_id:
            continue
        if isinstance(value, LookupValue):
            body[f"{name}@odata.bind"] = key(value.entity, value.id)
        else:
            body[name] = _plain(value)
    return body


def _plain(value: FieldValue) -> Any:
    return value
