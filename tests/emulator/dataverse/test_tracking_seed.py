"""Resco tracking records (delete, owner change, N:N removal) and the seed generator."""

from __future__ import annotations

from pathlib import Path

import httpx

from crmsync_desktop.emulator.dataverse import DataverseOrg
from crmsync_desktop.emulator.seed import seed_sales_org

from .conftest import entity_id

SELECT = ("resco_action,resco_entityname,resco_objectid,resco_relationshipname,resco_relatedobjectid,"
          "resco_previousownerid,resco_newownerid,resco_newowneridtype,versionnumber,createdon")


def test_tracking_records_for_delete_owner_change_and_nn_removal(api: httpx.Client, user_api: httpx.Client,
                                                                   admin: httpx.Client) -> None:
    untracked = entity_id(api.post("accounts", json={"name": "before"}))
    api.delete(f"accounts({untracked})")
    assert api.get("resco_mobiletrackings").json()["value"] == []  # nothing is tracked by default
    admin.put("tracking/entities/account", json={"delete": True, "owner": True})
    admin.put("tracking/relationships/leadcompetitors_association", json={"enabled": True})
    acc = entity_id(api.post("accounts", json={"name": "tracked"}))
    first = api.get("resco_mobiletrackings?$select=versionnumber").json()["value"]
    watermark = max([r["versionnumber"] for r in first], default=0)
    user = user_api.get("WhoAmI").json()["UserId"]
    api.patch(f"accounts({acc})", json={"ownerid@odata.bind": f"systemusers({user})"})
    api.patch(f"accounts({acc})", json={"name": "same owner"})  # no ownership change -> no record
    lead = entity_id(api.post("leads", json={"lastname": "L"}))
    comp = entity_id(api.post("competitors", json={"name": "C"}))
    api.post(f"leads({lead})/leadcompetitors_association/$ref", json={"@odata.id": f"competitors({comp})"})
    api.delete(f"competitors({comp})/leadcompetitors_association({lead})/$ref")
    api.delete(f"accounts({acc})")
    rows = api.get("resco_mobiletrackings", params={
        "$select": SELECT, "$filter": f"versionnumber gt {watermark}", "$orderby": "versionnumber"},
        headers={"Prefer": 'odata.include-annotations="OData.Community.Display.V1.FormattedValue"'}).json()["value"]
    assert [r["resco_action@OData.Community.Display.V1.FormattedValue"] for r in rows] == [
        "Owner Change", "Disassociate", "Delete"]
    owner, nn, delete = rows
    assert (owner["resco_objectid"], owner["resco_newownerid"], owner["resco_newowneridtype"]) == (acc, user, "systemuser")
    assert owner["resco_previousownerid"] == api.get("WhoAmI").json()["UserId"]
    assert (nn["resco_relationshipname"], nn["resco_entityname"], nn["resco_objectid"], nn["resco_relatedobjectid"]) == (
        "leadcompetitors_association", "lead", lead, comp)
    assert (delete["resco_entityname"], delete["resco_objectid"]) == ("account", acc)
    assert api.get("resco_mobiletrackings", params={"$filter": f"versionnumber gt {rows[-1]['versionnumber']}"}
                   ).json()["value"] == []
    delta = api.get("resco_mobiletrackings?$select=resco_action", headers={"Prefer": "odata.track-changes"})
    assert len(delta.json()["value"]) == 3


def _dump(org: DataverseOrg) -> dict[str, list[tuple]]:
    out = {}
    for table in ("businessunit", "systemuser", "team", "account", "contact", "lead", "opportunity", "competitor",
                  "leadcompetitors", "task", "phonecall", "teammembership"):
        out[table] = org.conn.execute(f'SELECT * FROM "{table}" ORDER BY 1').fetchall()
    return out


def test_seed_is_deterministic_and_realistic(tmp_path: Path) -> None:
    a = DataverseOrg.create(tmp_path / "a.db", org_id="6f1b1d2e-0000-4000-8000-000000000001")
    b = DataverseOrg.create(tmp_path / "b.db", org_id="6f1b1d2e-0000-4000-8000-000000000001")
    c = DataverseOrg.create(tmp_path / "c.db", org_id="6f1b1d2e-0000-4000-8000-000000000001")
    try:
        counts = seed_sales_org(a, records=3000, seed=42)
        assert seed_sales_org(b, records=3000, seed=42) == counts
        seed_sales_org(c, records=3000, seed=43)
        assert _dump(a) == _dump(b)
        assert _dump(a)["account"] != _dump(c)["account"]
        assert 2900 <= sum(counts.values()) - counts["teammembership"] <= 3000
        assert a.conn.execute("select count(*) from contact where parentcustomerid is not null").fetchone()[0] > 0
        assert a.conn.execute("select count(distinct ownerid__type) from account").fetchone()[0] == 2
        assert a.conn.execute("select count(*) from leadcompetitors").fetchone()[0] == counts["leadcompetitors"] > 0
        assert a.conn.execute("select count(*) from task where regardingobjectid is not null").fetchone()[0] > 0
    finally:
        a.close()
        b.close()
        c.close()


def test_seeded_org_serves_valid_rows(api: httpx.Client, org: DataverseOrg) -> None:
    seed_sales_org(org, records=500, seed=1)
    leads = api.get("leads", params={"$select": "fullname,statecode,statuscode,_parentaccountid_value"},
                    headers={"Prefer": 'odata.include-annotations="*"'}).json()["value"]
    assert leads
    states = {(r["statecode"], r["statuscode"]) for r in leads}
    valid = {(0, 1), (0, 2), (1, 3), (2, 4), (2, 5), (2, 6), (2, 7)}
    assert states <= valid
    assert all(r["statuscode@OData.Community.Display.V1.FormattedValue"] for r in leads)
