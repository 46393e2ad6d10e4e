"""Dataverse JSON rows <-> plain records (docs §4.2, §6.5, §9).

Reading: lookups arrive as ``_<attr>_value`` GUIDs with a ``@Microsoft.Dynamics.CRM.lookuplogicalname``
annotation and become :class:`LookupValue`; FetchXML omits null columns, which become ``None`` so
both read paths give the same shape. Writing: a :class:`LookupValue` becomes
``"<navigation property>@odata.bind": "/<entityset>(<id>)"``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from crmsync_desktop.sync.connectors.dataverse.metadata import MetadataService
from crmsync_desktop.sync.connectors.types import EntityMeta, FieldValue, LookupValue, Record

LOOKUP_ENTITY = "@Microsoft.Dynamics.CRM.lookuplogicalname"
ETAG = "@odata.etag"
READ_ANNOTATIONS = 'odata.include-annotations="Microsoft.Dynamics.CRM.lookuplogicalname"'


def lookup_names(meta: EntityMeta) -> frozenset[str]:
    return frozenset(f.logical_name for f in meta.fields if f.type.is_lookup)


def select_list(meta: EntityMeta, fields: Iterable[str]) -> list[str]:
    """``$select`` columns: the primary id first, lookups as ``_<name>_value``."""
    lookups = lookup_names(meta)
    names = [meta.primary_id, *(f for f in fields if f != meta.primary_id)]
    return [f"_{n}_value" if n in lookups else n for n in dict.fromkeys(names)]


def record_from_wire(row: dict[str, Any], meta: EntityMeta, fields: Sequence[str]) -> Record:
    return record_decoder(meta, fields)(row)


def records_from_wire(rows: Iterable[dict[str, Any]], meta: EntityMeta, fields: Sequence[str]) -> tuple[Record, ...]:
    """A page of rows as records (which field is a lookup is worked out once per page, not per row)."""
    decode = record_decoder(meta, fields)
    return tuple(decode(r) for r in rows)


_SCALARS = frozenset({str, int, float, bool})


def record_decoder(meta: EntityMeta, fields: Sequence[str]) -> Callable[[dict[str, Any]], Record]:
    """``row -> record`` for ``fields`` of ``meta`` (see the module docstring)."""
    pid = meta.primary_id
    lookups = lookup_names(meta)
    # (name, wire key, annotation key, target when unannotated) for lookups; wire key None for the rest
    specs: list[tuple[str, str | None, str, str]] = []
    for name in fields:
        if name == pid:
            continue
        if name in lookups:
            fmeta = meta.field(name)
            default = fmeta.targets[0] if fmeta and len(fmeta.targets) == 1 else ""
            key = f"_{name}_value"
            specs.append((name, key, key + LOOKUP_ENTITY, default))
        else:
            specs.append((name, None, "", ""))
    scalars = _SCALARS

    def decode(row: dict[str, Any]) -> Record:
        get = row.get
        out: Record = {pid: _lower(get(pid))}
        for name, key, annotation, default in specs:
            if key is None:
                value = get(name)
                out[name] = value if value is None or type(value) in scalars else _plain(value)
                continue
            value = get(key)
            if value is None:
                out[name] = None
                continue
            target = get(annotation) or default
            out[name] = LookupValue(entity=str(target), id=str(value).lower())
        return out

    return decode


def _lower(value: Any) -> str:
    return str(value).lower() if value is not None else ""


def _plain(value: Any) -> FieldValue:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)  # nothing else is expected for selected columns; never leak containers


async def body_from_record(
    record: Record, meta: EntityMeta, metadata: MetadataService, *, include_id: bool
) -> dict[str, Any]:
    """The JSON body for a create/update/upsert of ``record``."""
    body: dict[str, Any] = {}
    for name, value in record.items():
        if name == meta.primary_id and not include_id:
            continue
        if isinstance(value, LookupValue):
            nav = await metadata.navigation_property(meta.logical_name, name, value.entity)
            entity_set = await metadata.entity_set(value.entity)
            body[f"{nav}@odata.bind"] = f"/{entity_set}({value.id})"
        else:
            body[name] = value
    return body
