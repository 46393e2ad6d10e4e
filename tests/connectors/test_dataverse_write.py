"""Dataverse writes: UpsertMultiple with bisection, $batch fallback, lookups, deletes, N:N, owner."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
import respx

from crmsync_desktop import errors
from crmsync_desktop.sync.connectors.dataverse import DataverseConnector
from crmsync_desktop.sync.connectors.dataverse.batch import BatchOperation, build_batch, parse_batch_response
from crmsync_desktop.sync.connectors.types import BulkMessage, LookupValue
from tests.connectors.conftest import API, mock_metadata

pytestmark = pytest.mark.asyncio
A1 = "aaaaaaaa-0000-0000-0000-000000000001"
U1 = "99999999-0000-0000-0000-000000000001"


def bulk_support(router: respx.MockRouter, *supported: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        message = request.url.params["@message"].strip("'")
        return httpx.Response(200, json={"value": [{"sdkmessagefilterid": "f"}] if message in supported else []})

    router.get("sdkmessagefilters").mock(side_effect=handler)


def ids(n: int) -> list[str]:
    return [str(uuid.UUID(int=i + 1)) for i in range(n)]


async def test_one_bad_record_among_1000_is_isolated_by_bisection(dv: DataverseConnector, dv_router: respx.MockRouter) -> None:
    mock_metadata(dv_router)
    bulk_support(dv_router, "UpsertMultiple", "CreateMultiple", "UpdateMultiple")
    record_ids = ids(1000)
    bad = record_ids[617]
    landed: set[str] = set()

    def upsert_multiple(request: httpx.Request) -> httpx.Response:
        targets = json.loads(request.content)["Targets"]
        assert all(t["@odata.type"] == "Microsoft.Dynamics.CRM.contact" for t in targets)
        if any(t["contactid"] == bad for t in targets):  # all-or-nothing, like a standard table
            return httpx.Response(400, json={"error": {"code": "0x80044331", "message": "fullname is too long."}})
        landed.update(t["contactid"] for t in targets)
        return httpx.Response(204)

    route = dv_router.post("contacts/Microsoft.Dynamics.CRM.UpsertMultiple").mock(side_effect=upsert_multiple)
    records = [{"contactid": rid, "fullname": f"n{i}"} for i, rid in enumerate(record_ids)]
    results = await dv.upsert_many("contact", records)

    assert [r.id for r in results] == record_ids  # one result per record, in order
    failed = [r for r in results if not r.ok]
    assert len(failed) == 1 and failed[0].id == bad
    assert "fullname is too long" in (failed[0].error or "") and failed[0].retryable is False and failed[0].status == 400
    assert landed == set(record_ids) - {bad}
    assert route.call_count <= 4 + 2 * 8  # 4 chunks of 250, then log2(250) halvings for the bad chunk
    assert (await dv.capabilities(["contact"])).bulk_messages["contact"] == frozenset(BulkMessage)


async def test_batch_fallback_reports_each_part(dv: DataverseConnector, dv_router: respx.MockRouter) -> None:
    mock_metadata(dv_router)
    bulk_support(dv_router)  # nothing supported -> $batch
    record_ids = ids(3)
    seen: list[list[str]] = []

    def batch(request: httpx.Request) -> httpx.Response:
        assert request.headers["Prefer"] == "odata.continue-on-error"
        boundary = request.headers["Content-Type"].split('boundary="')[1].rstrip('"')
        text = request.content.decode()
        assert "\r\n" in text and text.rstrip().endswith(f"--{boundary}--")
        lines = [ln for ln in text.split("\r\n") if ln.startswith("PATCH ")]
        seen.append(lines)
        parts = []
        for ln in lines:
            if record_ids[1] in ln:
                parts.append("HTTP/1.1 400 Bad Request\nContent-Type: application/json\n\n"
                             '{"error":{"code":"0x8004431A","message":"Picklist value out of range"}}')
            else:
                parts.append("HTTP/1.1 204 No Content\nOData-EntityId: x\n\n")
        body = "".join(f"--batchresponse_1\nContent-Type: application/http\nContent-Transfer-Encoding: binary\n\n{p}\n"
                       for p in parts) + "--batchresponse_1--\n"
        return httpx.Response(200, content=body.encode(), headers={"Content-Type": "multipart/mixed; boundary=batchresponse_1"})

    dv_router.post("$batch").mock(side_effect=batch)
    results = await dv.upsert_many("contact", [{"contactid": r, "preferredcontactmethodcode": 9} for r in record_ids])
    assert [r.ok for r in results] == [True, False, True]
    assert "Picklist value out of range" in (results[1].error or "")
    assert seen[0][0] == f"PATCH /api/data/v9.2/contacts({record_ids[0]}) HTTP/1.1"


async def test_lookup_written_with_case_sensitive_navigation_property(dv: DataverseConnector, dv_router: respx.MockRouter) -> None:
    mock_metadata(dv_router)
    bulk_support(dv_router, "UpsertMultiple")
    route = dv_router.post("contacts/Microsoft.Dynamics.CRM.UpsertMultiple").respond(204)
    cid = ids(1)[0]
    await dv.upsert_many("contact", [{
        "contactid": cid, "fullname": "Ann",
        "parentcustomerid": LookupValue("account", A1),
        "ownerid": LookupValue("systemuser", U1),
    }])
    target = json.loads(route.calls[0].request.content)["Targets"][0]
    assert target == {
        "@odata.type": "Microsoft.Dynamics.CRM.contact", "contactid": cid, "fullname": "Ann",
        "parentcustomerid_account@odata.bind": f"/accounts({A1})",
        "ownerid@odata.bind": f"/systemusers({U1})",
    }


async def test_lookup_to_unrelated_entity_fails_only_that_record(dv: DataverseConnector, dv_router: respx.MockRouter) -> None:
    mock_metadata(dv_router)
    bulk_support(dv_router, "UpsertMultiple")
    route = dv_router.post("contacts/Microsoft.Dynamics.CRM.UpsertMultiple").respond(204)
    good, bad = ids(2)
    results = await dv.upsert_many("contact", [{"contactid": good}, {"contactid": bad, "parentcustomerid": LookupValue("role", A1)}])
    assert results[0].ok and not results[1].ok and "no relationship" in (results[1].error or "")
    assert len(json.loads(route.calls[0].request.content)["Targets"]) == 1


async def test_if_match_goes_through_batch_and_reports_conflicts(dv: DataverseConnector, dv_router: respx.MockRouter) -> None:
    mock_metadata(dv_router)
    bulk_support(dv_router, "UpsertMultiple")
    (rid,) = ids(1)

    def batch(request: httpx.Request) -> httpx.Response:
        assert 'If-Match: W/"5"' in request.content.decode()
        body = ("--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 412 Precondition Failed\r\n\r\n"
                '{"error":{"code":"","message":"The version of the existing record doesn\'t match"}}\r\n--b--\r\n')
        return httpx.Response(200, content=body.encode(), headers={"Content-Type": 'multipart/mixed; boundary="b"'})

    dv_router.post("$batch").mock(side_effect=batch)
    (result,) = await dv.upsert_many("contact", [{"contactid": rid, "fullname": "x"}], if_match={rid: 'W/"5"'})
    assert not result.ok and result.conflict and result.status == 412


async def test_delete_many_treats_missing_as_deleted(dv: DataverseConnector, dv_router: respx.MockRouter) -> None:
    mock_metadata(dv_router)
    gone, there = ids(2)
    body = ("--r\nContent-Type: application/http\n\nHTTP/1.1 404 Not Found\n\n{}\n"
            "--r\nContent-Type: application/http\n\nHTTP/1.1 204 No Content\n\n\n--r--\n")
    route = dv_router.post("$batch").respond(200, content=body.encode(), headers={"Content-Type": "multipart/mixed; boundary=r"})
    results = await dv.delete_many("contact", [gone, there])
    assert all(r.ok for r in results)
    assert f"DELETE /api/data/v9.2/contacts({gone}) HTTP/1.1" in route.calls[0].request.content.decode()


async def test_whole_batch_rejected_is_bisected(dv: DataverseConnector, dv_router: respx.MockRouter) -> None:
    mock_metadata(dv_router)
    bulk_support(dv_router)
    record_ids = ids(4)

    def batch(request: httpx.Request) -> httpx.Response:
        text = request.content.decode()
        if record_ids[2] in text:  # e.g. the server ignored continue-on-error and failed the batch
            return httpx.Response(400, json={"error": {"code": "0x80044331", "message": "A validation error occurred."}})
        n = text.count("PATCH ")
        body = "".join("--r\nContent-Type: application/http\n\nHTTP/1.1 204 No Content\n\n\n" for _ in range(n)) + "--r--\n"
        return httpx.Response(200, content=body.encode(), headers={"Content-Type": "multipart/mixed; boundary=r"})

    dv_router.post("$batch").mock(side_effect=batch)
    results = await dv.upsert_many("contact", [{"contactid": r} for r in record_ids])
    assert [r.ok for r in results] == [True, True, False, True]


async def test_service_failures_mark_records_retryable_instead_of_bisecting(dv: DataverseConnector, dv_router: respx.MockRouter) -> None:
    mock_metadata(dv_router)
    bulk_support(dv_router, "UpsertMultiple")
    route = dv_router.post("contacts/Microsoft.Dynamics.CRM.UpsertMultiple").respond(503)
    results = await dv.upsert_many("contact", [{"contactid": r} for r in ids(4)])
    assert all(not r.ok and r.retryable and r.status == 503 for r in results)
    assert route.call_count == 5  # retried (upsert by client id is idempotent), never bisected


async def test_associate_disassociate_and_assign(dv: DataverseConnector, dv_router: respx.MockRouter) -> None:
    mock_metadata(dv_router)
    dv_router.get("RelationshipDefinitions(SchemaName='systemuserroles_association')").respond(200, json={
        "@odata.type": "#Microsoft.Dynamics.CRM.ManyToManyRelationshipMetadata", "SchemaName": "systemuserroles_association",
        "Entity1LogicalName": "systemuser", "Entity2LogicalName": "role", "IntersectEntityName": "systemuserroles",
        "Entity1NavigationPropertyName": "systemuserroles_association", "Entity2NavigationPropertyName": "systemuserroles_association"})
    role = "12345678-0000-0000-0000-000000000000"
    link = dv_router.post(f"systemusers({U1})/systemuserroles_association/$ref")
    link.side_effect = [httpx.Response(204),
                        httpx.Response(400, json={"error": {"code": "0x80040237", "message": "Cannot insert duplicate key."}})]
    await dv.associate("systemuserroles_association", U1, role)
    await dv.associate("systemuserroles_association", U1, role)  # already linked: fine
    assert json.loads(link.calls[0].request.content) == {"@odata.id": f"{API}roles({role})"}
    unlink = dv_router.delete(f"systemusers({U1})/systemuserroles_association({role})/$ref").respond(404)
    await dv.disassociate("systemuserroles_association", U1, role)
    assert unlink.called

    assign = dv_router.patch(f"accounts({A1})").respond(204)
    await dv.assign("account", A1, LookupValue("team", U1))
    assert json.loads(assign.calls[0].request.content) == {"ownerid@odata.bind": f"/teams({U1})"}
    assert assign.calls[0].request.headers["If-Match"] == "*"
    with pytest.raises(errors.ValidationError):
        await dv.assign("account", A1, LookupValue("account", U1))


async def test_schema_creation_on_the_server_is_refused(dv: DataverseConnector) -> None:
    from crmsync_desktop.sync.connectors.types import EntityMeta
    with pytest.raises(errors.ConfigError, match="never changes the schema"):
        await dv.create_entity(EntityMeta("new_thing"))


async def test_batch_roundtrip_with_nested_changeset() -> None:
    ctype, body = build_batch([BatchOperation("DELETE", "/api/data/v9.2/accounts(1)")], boundary="batch_x")
    assert ctype == 'multipart/mixed; boundary="batch_x"'
    assert body.decode().startswith("--batch_x\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n")
    response = (
        "--batchresponse_a\r\nContent-Type: multipart/mixed; boundary=changesetresponse_b\r\n\r\n"
        "--changesetresponse_b\r\nContent-Type: application/http\r\nContent-ID: 1\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n\r\n"
        "--changesetresponse_b\r\nContent-Type: application/http\r\nContent-ID: 2\r\n\r\nHTTP/1.1 200 OK\r\n"
        'Content-Type: application/json\r\n\r\n{"a": 1}\r\n--changesetresponse_b--\r\n'
        "--batchresponse_a\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 404 Not Found\r\n\r\n{}\r\n--batchresponse_a--\r\n"
    )
    parts = parse_batch_response("multipart/mixed; boundary=batchresponse_a", response.encode())
    assert [p.status for p in parts] == [204, 200, 404]
    assert parts[1].json() == {"a": 1}


async def test_enable_change_tracking_puts_the_complete_definition_back(dv: DataverseConnector, dv_router: respx.MockRouter) -> None:
    """docs §3.2: metadata is not PATCHed; PUT the whole definition with MSCRM.MergeLabels; §5: irreversible."""
    from crmsync_desktop.sync.connectors.types import EntityMeta, FieldMeta, FieldType
    mid = "70816501-edb9-4740-a16c-6a5efbc05d84"
    definition = {"@odata.context": "x", "MetadataId": mid, "LogicalName": "lead", "SchemaName": "Lead",
                  "EntitySetName": "leads", "ChangeTrackingEnabled": False,
                  "CanChangeTrackingBeEnabled": {"Value": True, "CanBeChanged": False},
                  "DisplayName": {"LocalizedLabels": [{"Label": "Lead", "LanguageCode": 1033}]}}
    read = dv_router.get("EntityDefinitions(LogicalName='lead')").respond(200, json=definition)
    put = dv_router.put(f"EntityDefinitions({mid})").respond(204)
    await dv.enable_change_tracking("lead")
    sent = json.loads(put.calls[0].request.content)
    assert put.calls[0].request.headers["MSCRM.MergeLabels"] == "true"
    assert sent["ChangeTrackingEnabled"] is True and sent["DisplayName"] == definition["DisplayName"]
    assert sent["@odata.type"] == "Microsoft.Dynamics.CRM.EntityMetadata" and "@odata.context" not in sent
    assert sent["SchemaName"] == "Lead" and sent["MetadataId"] == mid

    read.respond(200, json={**definition, "ChangeTrackingEnabled": True})
    await dv.update_entity(EntityMeta("lead", label="Ignored", change_tracking=True))  # on already: no PUT
    assert put.call_count == 1
    await dv.update_entity(EntityMeta("lead", label="Ignored"))  # labels of the server are never changed
    assert put.call_count == 1 and read.call_count == 2

    dv_router.get("EntityDefinitions(LogicalName='audit')").respond(200, json={
        **definition, "LogicalName": "audit", "MetadataId": "x", "CanChangeTrackingBeEnabled": {"Value": False}})
    with pytest.raises(errors.ValidationError, match="does not allow change tracking"):
        await dv.enable_change_tracking("audit")
    dv_router.get("EntityDefinitions(LogicalName='nosuch')").respond(
        404, json={"error": {"code": "0x80040217", "message": "Could not find an entity"}})
    with pytest.raises(errors.NotFoundError):
        await dv.enable_change_tracking("nosuch")
    with pytest.raises(errors.ConfigError, match="never changes the schema"):
        await dv.update_field("lead", FieldMeta("subject", FieldType.STRING, max_length=400))
