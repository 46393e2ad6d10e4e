"""$batch (change sets, rollback, Content-ID, continue-on-error, cap) and the bulk actions."""

from __future__ import annotations

import json
import re

import httpx

from .conftest import entity_id


def _part(method: str, url: str, body: object | None = None, content_id: str | None = None) -> str:
    head = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    if content_id:
        head += f"Content-ID: {content_id}\r\n"
    req = f"{method} {url} HTTP/1.1\r\n"
    if body is not None:
        req += "Content-Type: application/json; type=entry\r\n\r\n" + json.dumps(body)
    else:
        req += "\r\n"
    return head + "\r\n" + req + "\r\n"


def _batch(api: httpx.Client, items: list[str | list[str]], prefer: str | None = None) -> httpx.Response:
    out = []
    for item in items:
        if isinstance(item, list):
            cs = "changeset_abc"
            inner = "".join(f"--{cs}\r\n{p}" for p in item) + f"--{cs}--\r\n"
            out.append(f"--batch_x\r\nContent-Type: multipart/mixed; boundary={cs}\r\n\r\n{inner}")
        else:
            out.append(f"--batch_x\r\n{item}")
    body = "".join(out) + "--batch_x--\r\n"
    headers = {"Content-Type": "multipart/mixed; boundary=batch_x"}
    if prefer:
        headers["Prefer"] = prefer
    return api.post("$batch", content=body.encode(), headers=headers)


def _statuses(r: httpx.Response) -> list[int]:
    assert r.headers["content-type"].startswith("multipart/mixed; boundary=batchresponse_")
    return [int(s) for s in re.findall(r"HTTP/1\.1 (\d{3})", r.text)]


def test_changeset_with_content_id_references(api: httpx.Client, server: str) -> None:
    r = _batch(api, [[
        _part("POST", "/api/data/v9.2/accounts", {"name": "Batch parent"}, "1"),
        _part("POST", f"{server}/api/data/v9.2/contacts", {"lastname": "Batch kid",
                                                            "parentcustomerid_account@odata.bind": "$1"}, "2"),
        _part("PATCH", "$1", {"primarycontactid@odata.bind": "$2"}, "3"),
    ], _part("GET", "accounts?$select=name,_primarycontactid_value&$filter=name%20eq%20'Batch%20parent'")])
    assert r.status_code == 200
    assert _statuses(r) == [204, 204, 204, 200]
    assert "changesetresponse_" in r.text and "OData-EntityId:" in r.text
    row = json.loads(r.text[r.text.index('{"@odata.context"'):r.text.rindex("}") + 1])["value"][0]
    assert row["_primarycontactid_value"]


def test_changeset_rolls_back_and_stops_batch(api: httpx.Client) -> None:
    r = _batch(api, [[
        _part("POST", "accounts", {"name": "rolled back"}, "1"),
        _part("POST", "accounts", {"name": "x" * 500}, "2"),
    ], _part("POST", "accounts", {"name": "never runs"})])
    assert r.status_code == 400
    assert _statuses(r) == [400]
    assert "0x80044331" in r.text
    names = [a["name"] for a in api.get("accounts?$select=name").json()["value"]]
    assert names == []


def test_continue_on_error(api: httpx.Client) -> None:
    r = _batch(api, [
        _part("POST", "accounts", {"name": "one"}),
        _part("POST", "accounts", {"industrycode": 12345}),
        [_part("POST", "accounts", {"name": "cs ok"}, "1"), _part("POST", "accounts", {"bad": 1}, "2")],
        _part("POST", "accounts", {"name": "three"}),
    ], prefer="odata.continue-on-error")
    assert r.status_code == 200 and r.headers["Preference-Applied"] == "odata.continue-on-error"
    assert _statuses(r) == [204, 400, 400, 204]
    names = sorted(a["name"] for a in api.get("accounts?$select=name").json()["value"])
    assert names == ["one", "three"]


def test_batch_errors(api: httpx.Client) -> None:
    r = _batch(api, [[_part("GET", "accounts", None, "1")]])
    assert r.status_code == 400
    r = _batch(api, [[_part("PATCH", "$9", {"name": "x"}, "1")]])
    assert r.status_code == 400 and "Content-ID Reference: '$9' does not exist in the batch context." in r.text
    too_many = _batch(api, [_part("GET", "WhoAmI")] * 1001)
    assert too_many.status_code == 400
    assert _batch(api, [_part("GET", "WhoAmI")] * 1000).status_code == 200


def test_create_multiple_all_or_nothing(api: httpx.Client) -> None:
    t = "Microsoft.Dynamics.CRM.account"
    ok = api.post("accounts/Microsoft.Dynamics.CRM.CreateMultiple",
                  json={"Targets": [{"@odata.type": t, "name": f"bulk {i}"} for i in range(3)]})
    assert ok.status_code == 200
    body = ok.json()
    assert body["@odata.context"].endswith("$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse")
    assert len(body["Ids"]) == 3
    bad = api.post("accounts/Microsoft.Dynamics.CRM.CreateMultiple",
                   json={"Targets": [{"@odata.type": t, "name": "fine"}, {"@odata.type": t, "industrycode": -5}]})
    assert bad.status_code == 400
    untyped = api.post("accounts/Microsoft.Dynamics.CRM.CreateMultiple", json={"Targets": [{"name": "no type"}]})
    assert untyped.status_code == 400
    assert len(api.get("accounts?$select=name").json()["value"]) == 3
    unsupported = api.post("systemusers/Microsoft.Dynamics.CRM.CreateMultiple",
                           json={"Targets": [{"@odata.type": "Microsoft.Dynamics.CRM.systemuser"}]})
    assert unsupported.status_code == 400 and "does not support entities of type 'systemuser'" in unsupported.text
    upd = api.post("accounts/Microsoft.Dynamics.CRM.UpdateMultiple", json={"Targets": [
        {"@odata.type": t, "accountid": body["Ids"][0], "name": "first wins"},
        {"@odata.type": t, "accountid": body["Ids"][0], "name": "ignored"}]})
    assert upd.status_code == 204
    assert api.get(f"accounts({body['Ids'][0]})?$select=name").json()["name"] == "first wins"


def test_upsert_multiple_all_or_nothing(api: httpx.Client) -> None:
    t = "Microsoft.Dynamics.CRM.account"
    existing = entity_id(api.post("accounts", json={"name": "existing", "accountnumber": "U-1"}))
    ok = api.post("accounts/Microsoft.Dynamics.CRM.UpsertMultiple", json={"Targets": [
        {"@odata.type": t, "@odata.id": "accounts(accountnumber='U-1')", "name": "updated by key"},
        {"@odata.type": t, "@odata.id": "accounts(accountnumber='U-2')", "name": "created by key"},
    ]})
    assert ok.status_code == 204
    assert api.get(f"accounts({existing})?$select=name").json()["name"] == "updated by key"
    assert api.get("accounts(accountnumber='U-2')?$select=name").json()["name"] == "created by key"
    dup = api.post("accounts/Microsoft.Dynamics.CRM.UpsertMultiple", json={"Targets": [
        {"@odata.type": t, "@odata.id": "accounts(accountnumber='U-3')", "name": "a"},
        {"@odata.type": t, "@odata.id": "accounts(accountnumber='U-3')", "name": "b"}]})
    assert dup.status_code == 400
    failing = api.post("accounts/Microsoft.Dynamics.CRM.UpsertMultiple", json={"Targets": [
        {"@odata.type": t, "@odata.id": "accounts(accountnumber='U-1')", "name": "should roll back"},
        {"@odata.type": t, "@odata.id": "accounts(accountnumber='U-4')", "name": "x" * 200}]})
    assert failing.status_code == 400
    assert api.get(f"accounts({existing})?$select=name").json()["name"] == "updated by key"
    assert api.get("accounts(accountnumber='U-4')").status_code == 404
