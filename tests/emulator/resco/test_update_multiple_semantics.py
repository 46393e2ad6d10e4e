"""``UpdateMultiple`` semantics of the emulated Resco REST data service, over real HTTPS.

Pins what the set-based ``RescoOrg.write_many`` must keep from writing the items one by one:
per-record results (201 created, 200 updated, 400 bad record, 404 missing without ``$create``)
with the others still written; an id repeated in one request ends as one row with the later
values; every written item takes the next row version in request order; ``GetMaxRowVersion`` and
"changed since row version X" (a ``versionnumber`` Fetch) see exactly what was written.
"""

from __future__ import annotations

import itertools
import uuid
from xml.etree import ElementTree as ET

import httpx
import pytest

from crmsync_desktop.emulator.resco import EntityDef
from tests.emulator.resco.conftest import ACCOUNT, CONTACT, Resco

DATA = "/rest/v1/data/contoso"

# A value in a record: text, ``None`` (sent as Null="true"), or ``(target, id)`` for a lookup.
Value = str | None | tuple[str, str]


@pytest.fixture
def schema(resco: Resco) -> Resco:
    resco.org.create_entity(EntityDef.from_json(ACCOUNT))
    resco.org.create_entity(EntityDef.from_json(CONTACT))
    return resco


def _new_id() -> str:
    return str(uuid.uuid4())


def _post(client: httpx.Client, method: str, body: bytes | str = b"", **params: str) -> ET.Element:
    response = client.post(
        f"{DATA}/{method}", content=body, params=params, headers={"Content-Type": "application/xml"}
    )
    assert response.status_code == 200, response.text
    return ET.fromstring(response.content)


def _update_multiple(
    client: httpx.Client,
    records: list[tuple[str, dict[str, Value]]],
    *,
    create: bool,
    entity: str = "account",
) -> list[tuple[str, int, str | None, str | None]]:
    """Send one request; ``(Id, Status, error code, error message)`` per ``<Result>``, in response order."""
    root = ET.Element("EntityCollection", {"EntityName": entity})
    for record_id, values in records:
        element = ET.SubElement(root, "Entity", {"LogicalName": entity, "Id": record_id})
        for name, value in values.items():
            attribute = ET.SubElement(element, "Attribute", {"Name": name})
            if value is None:
                attribute.set("Null", "true")
            elif isinstance(value, tuple):
                attribute.set("Target", value[0])
                attribute.text = value[1]
            else:
                attribute.text = value
    response = _post(
        client, "UpdateMultiple", ET.tostring(root, encoding="utf-8"), **{"$create": str(create).lower()}
    )
    assert response.tag == "UpdateMultipleResponse"
    return [
        (
            r.get("Id") or "",
            int(r.get("Status") or 0),
            r.findtext("Error/Code"),
            r.findtext("Error/Message"),
        )
        for r in response.findall("Result")
    ]


def _statuses(results: list[tuple[str, int, str | None, str | None]]) -> list[int]:
    return [status for _, status, _, _ in results]


def _max_row_version(client: httpx.Client, entity: str | None = None) -> int:
    body = (
        f"<GetMaxRowVersionRequest><EntityName>{entity}</EntityName></GetMaxRowVersionRequest>"
        if entity
        else ""
    )
    return int(_post(client, "GetMaxRowVersion", body).findtext("RowVersion") or "-1")


def _fetch(client: httpx.Client, since: int | None = None, entity: str = "account") -> list[dict[str, str]]:
    """Every record (all attributes, nulls left out, plus ``Id``), in row-version order; optionally only
    those changed after row version ``since``."""
    condition = (
        f'<filter><condition attribute="versionnumber" operator="gt" value="{since}"/></filter>'
        if since is not None
        else ""
    )
    root = _post(
        client,
        "Fetch",
        f'<fetch><entity name="{entity}"><all-attributes/>{condition}'
        f'<order attribute="versionnumber"/></entity></fetch>',
    )
    assert root.get("MoreRecords") == "false"
    return [
        {"Id": e.get("Id") or "", **{a.get("Name") or "": a.text or "" for a in e.findall("Attribute")}}
        for e in root.findall("Entity")
    ]


def _by_id(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    out = {row["Id"]: row for row in rows}
    assert len(out) == len(rows), f"an id is listed twice: {[r['Id'] for r in rows]}"
    return out


def _seed(client: httpx.Client, *names: str) -> list[str]:
    """Create accounts over the wire (one UpdateMultiple with ``$create``), in order; their ids."""
    ids = [_new_id() for _ in names]
    results = _update_multiple(
        client, [(i, {"name": n}) for i, n in zip(ids, names, strict=True)], create=True
    )
    assert _statuses(results) == [201] * len(names)
    return ids


def test_creates_and_updates_in_one_request(schema: Resco) -> None:
    with schema.client() as client:
        me = _post(client, "WhoAmI").findtext("SystemUserId")
        first, second = _seed(client, "First", "Second")
        assert _statuses(
            _update_multiple(client, [(first, {"industrycode": "1", "revenue": "10.5"})], create=False)
        ) == [200]
        new1, new2 = _new_id(), _new_id()

        results = _update_multiple(
            client,
            [
                (first, {"name": "First v2", "revenue": None}),
                (new1, {"name": "New one", "numberofemployees": "7", "parentaccountid": ("account", first)}),
                (second, {"donotcall": "true", "lastcontacted": "2024-05-01T12:00:00+02:00"}),
                (new2, {"name": "New two", "industrycode": "2"}),
            ],
            create=True,
        )

        assert results == [
            (first, 200, None, None),
            (new1, 201, None, None),
            (second, 200, None, None),
            (new2, 201, None, None),
        ]
        rows = _by_id(_fetch(client))
        assert set(rows) == {first, second, new1, new2}
        # An update changes only the attributes it names (Null clears); the rest stays.
        assert rows[first]["name"] == "First v2" and rows[first]["industrycode"] == "1"
        assert "revenue" not in rows[first]
        assert rows[second]["name"] == "Second" and rows[second]["donotcall"] == "true"
        assert rows[second]["lastcontacted"] == "2024-05-01T10:00:00Z"
        # A create stores the given id and values, and the caller as creator and default owner.
        assert rows[new1]["name"] == "New one" and rows[new1]["numberofemployees"] == "7"
        assert rows[new1]["parentaccountid"] == first
        assert rows[new2]["name"] == "New two" and rows[new2]["industrycode"] == "2"
        for created in (new1, new2):
            assert rows[created]["id"] == created
            assert rows[created]["ownerid"] == rows[created]["createdby"] == rows[created]["modifiedby"] == me
        assert rows[first]["modifiedby"] == me


def test_bad_record_gets_its_own_error_and_the_rest_are_written(schema: Resco) -> None:
    with schema.client() as client:
        existing, untouched = _seed(client, "Existing", "Untouched")
        before = _by_id(_fetch(client))
        mark = _max_row_version(client)
        good_new, bad_new, bad_id = _new_id(), _new_id(), "not-a-guid"
        bad_creates = {
            _new_id(): values
            for values in (
                {"name": "x", "nosuch": "1"},
                {"name": "x", "createdon": "2020-01-01T00:00:00Z"},
                {"name": "x", "industrycode": "3"},
                {"name": "x", "parentaccountid": ("contact", existing)},
            )
        }

        results = _update_multiple(
            client,
            [
                (good_new, {"name": "Good", "numberofemployees": "5"}),
                (bad_new, {"name": "Bad", "numberofemployees": "abc"}),
                (untouched, {"name": "Must not change", "revenue": "x"}),
                (bad_id, {"name": "Bad id"}),
                *bad_creates.items(),
                (existing, {"name": "Existing v2"}),
            ],
            create=True,
        )

        assert results == [
            (good_new, 201, None, None),
            (bad_new, 400, "BadRequest", "Invalid value for 'numberofemployees' (int): 'abc'"),
            (untouched, 400, "BadRequest", "Invalid value for 'revenue' (money): 'x'"),
            (bad_id, 400, "BadRequest", "badly formed hexadecimal UUID string"),
            *zip(
                bad_creates,
                [400] * 4,
                ["BadRequest"] * 4,
                [
                    "The entity 'account' has no field 'nosuch'.",
                    "The system field 'createdon' cannot be set.",
                    "Invalid value for 'industrycode' (picklist): '3'",
                    "'contact' is not a valid target of lookup 'parentaccountid'.",
                ],
                strict=True,
            ),
            (existing, 200, None, None),
        ]
        rows = _by_id(_fetch(client))
        assert set(rows) == {existing, untouched, good_new}  # no bad record was created
        assert rows[good_new]["name"] == "Good" and rows[good_new]["numberofemployees"] == "5"
        assert rows[existing]["name"] == "Existing v2"
        assert rows[untouched] == before[untouched]  # not even its valid "name" landed
        # Only the two written records took row versions.
        assert _max_row_version(client) == mark + 2


def test_update_of_missing_id_without_create_flag_is_a_per_record_404(schema: Resco) -> None:
    with schema.client() as client:
        first, second = _seed(client, "First", "Second")
        mark = _max_row_version(client)
        missing = _new_id()
        shouted = _new_id().upper()  # ids are case-insensitive; the message names the normalised id

        results = _update_multiple(
            client,
            [
                (first, {"name": "First v2"}),
                (missing, {"name": "Ghost"}),
                (second, {"name": "Second v2"}),
                (shouted, {"name": "Ghost too"}),
            ],
            create=False,
        )

        assert results == [
            (first, 200, None, None),
            (missing, 404, "NotFound", f"account With Id = {missing} Does Not Exist"),
            (second, 200, None, None),
            (shouted, 404, "NotFound", f"account With Id = {shouted.lower()} Does Not Exist"),
        ]
        rows = _by_id(_fetch(client))
        assert set(rows) == {first, second}
        assert rows[first]["name"] == "First v2" and rows[second]["name"] == "Second v2"
        assert _max_row_version(client) == mark + 2
        # The same record with the create flag is created.
        assert _update_multiple(client, [(missing, {"name": "Ghost"})], create=True) == [
            (missing, 201, None, None)
        ]
        assert _by_id(_fetch(client))[missing]["name"] == "Ghost"


def test_repeated_id_in_one_request_ends_as_one_row_with_the_later_values(schema: Resco) -> None:
    with schema.client() as client:
        (existing,) = _seed(client, "Existing")
        mark = _max_row_version(client)
        new, other, half_bad = _new_id(), _new_id(), _new_id()

        results = _update_multiple(
            client,
            [
                (new, {"name": "first", "numberofemployees": "1", "revenue": "10"}),  # mark+1, creates
                (existing, {"name": "e1", "industrycode": "1"}),  # mark+2
                (other, {"name": "other"}),  # mark+3
                (new.upper(), {"name": "second", "description": "d"}),  # mark+4, updates
                (half_bad, {"name": "kept"}),  # mark+5, creates
                (existing, {"name": "e2", "numberofemployees": "3"}),  # mark+6
                (half_bad, {"numberofemployees": "abc"}),  # 400, nothing
                (new, {"revenue": None, "industrycode": "2"}),  # mark+7
            ],
            create=True,
        )

        assert _statuses(results) == [201, 200, 201, 200, 201, 200, 400, 200]
        rows = _fetch(client)
        assert [r["Id"] for r in rows].count(new) == 1
        by_id = _by_id(rows)
        assert set(by_id) == {existing, new, other, half_bad}
        assert {
            k: by_id[new].get(k)
            for k in ("name", "numberofemployees", "description", "revenue", "industrycode")
        } == {
            "name": "second",
            "numberofemployees": "1",
            "description": "d",
            "revenue": None,
            "industrycode": "2",
        }
        assert by_id[existing]["name"] == "e2" and by_id[existing]["industrycode"] == "1"
        assert by_id[existing]["numberofemployees"] == "3"
        assert by_id[half_bad]["name"] == "kept" and "numberofemployees" not in by_id[half_bad]
        # Each record keeps the row version of its last write; every write took one.
        versions = {i: int(by_id[i]["versionnumber"]) for i in by_id}
        assert versions == {other: mark + 3, half_bad: mark + 5, existing: mark + 6, new: mark + 7}
        assert _max_row_version(client) == mark + 7

        # Without the create flag every occurrence of a missing id is a 404 and nothing is created.
        ghost = _new_id()
        assert _statuses(
            _update_multiple(client, [(ghost, {"name": "a"}), (ghost, {"name": "b"})], create=False)
        ) == [404, 404]
        # A refused first occurrence does not stop a later valid one from creating the record.
        late = _new_id()
        assert _statuses(
            _update_multiple(
                client,
                [(late, {"name": "x", "numberofemployees": "abc"}), (late, {"name": "late"})],
                create=True,
            )
        ) == [400, 201]
        final = _by_id(_fetch(client))
        assert ghost not in final and final[late]["name"] == "late"
        assert int(final[late]["versionnumber"]) == _max_row_version(client) == mark + 8


def test_row_versions_follow_request_order_and_max_row_version_moves_past_them(schema: Resco) -> None:
    with schema.client() as client:
        e1, e2, e3 = _seed(client, "E1", "E2", "E3")
        mark = _max_row_version(client)
        n1, n2 = _new_id(), _new_id()
        # Updates and creates interleaved; the stored records are not updated in id or creation order.
        order = [e3, n1, e1, n2, e2]

        results = _update_multiple(
            client,
            [
                (e3, {"name": "E3 v2"}),
                (n1, {"name": "N1"}),
                (e1, {"name": "E1 v2"}),
                (_new_id(), {"numberofemployees": "abc"}),  # refused: takes no row version
                (n2, {"name": "N2"}),
                (e2, {"name": "E2 v2"}),
            ],
            create=True,
        )

        assert _statuses(results) == [200, 201, 200, 400, 201, 200]
        versions = {row["Id"]: int(row["versionnumber"]) for row in _fetch(client)}
        in_request_order = [versions[i] for i in order]
        assert all(a < b for a, b in itertools.pairwise(in_request_order))
        assert in_request_order == list(range(mark + 1, mark + 6))
        assert _max_row_version(client) == _max_row_version(client, "account") == mark + 5
        assert _max_row_version(client, "contact") == 0

        # The next request continues after them.
        assert _statuses(_update_multiple(client, [(n1, {"name": "N1 v2"})], create=False)) == [200]
        assert int(_by_id(_fetch(client))[n1]["versionnumber"]) == _max_row_version(client) == mark + 6


def test_changes_since_row_version_return_exactly_the_written_records(schema: Resco) -> None:
    with schema.client() as client:
        e1, e2, e3 = _seed(client, "E1", "E2", "E3")
        mark = _max_row_version(client)
        n1, bad, missing = _new_id(), _new_id(), _new_id()

        assert _statuses(
            _update_multiple(
                client,
                [(e2, {"name": "E2 v2"}), (n1, {"name": "N1"}), (bad, {"name": "Bad", "industrycode": "9"})],
                create=True,
            )
        ) == [200, 201, 400]
        middle = _max_row_version(client)
        assert _statuses(
            _update_multiple(
                client,
                [(e3, {"numberofemployees": "abc"}), (missing, {"name": "Ghost"}), (n1, {"name": "N1 v2"})],
                create=False,
            )
        ) == [400, 404, 200]

        changed = _fetch(client, since=mark)
        assert [r["Id"] for r in changed] == [e2, n1]  # each once, in row-version order
        assert changed[0]["name"] == "E2 v2" and changed[1]["name"] == "N1 v2"
        assert [r["Id"] for r in _fetch(client, since=middle)] == [n1]
        assert _fetch(client, since=_max_row_version(client)) == []
        assert {r["Id"] for r in _fetch(client)} == {e1, e2, e3, n1}
        deleted = _post(
            client,
            "GetDeletedRecords",
            f"<GetDeletedRecordsRequest><RowVersion>{mark}</RowVersion></GetDeletedRecordsRequest>",
        )
        assert deleted.findall("DeletedRecord") == []
