"""Change tracking: initial load, deltas with tombstones, rejected options, token expiry."""

from __future__ import annotations

import datetime as dt

import httpx

from crmsync_desktop.emulator.dataverse import DataverseOrg

from .conftest import entity_id

TRACK = {"Prefer": "odata.track-changes"}


def test_delta_cycle_with_tombstones(api: httpx.Client) -> None:
    ids = [entity_id(api.post("accounts", json={"name": f"A{i}"})) for i in range(5)]
    url: str | None = "accounts?$select=name"
    initial: list[dict] = []
    delta_link = None
    while url:
        r = api.get(url, headers={"Prefer": "odata.track-changes,odata.maxpagesize=2"})
        assert r.status_code == 200 and "odata.track-changes" in r.headers["Preference-Applied"]
        body = r.json()
        initial += body["value"]
        url = body.get("@odata.nextLink")
        delta_link = body.get("@odata.deltaLink")
        assert not (url and delta_link)  # the deltaLink arrives on the last page only
    assert sorted(row["accountid"] for row in initial) == sorted(ids)
    assert delta_link and "$deltatoken=" in delta_link and "$select=name" in delta_link
    empty = api.get(delta_link).json()
    assert empty["value"] == [] and empty["@odata.context"].endswith("#accounts(name)/$delta")
    api.patch(f"accounts({ids[0]})", json={"name": "A0 renamed"})
    api.delete(f"accounts({ids[1]})")
    new = entity_id(api.post("accounts", json={"name": "fresh"}))
    gone = entity_id(api.post("accounts", json={"name": "short-lived"}))
    api.delete(f"accounts({gone})")
    body = api.get(empty["@odata.deltaLink"]).json()
    changed = [row for row in body["value"] if "@odata.etag" in row]
    stones = [row for row in body["value"] if row.get("reason") == "deleted"]
    assert {row["accountid"]: row["name"] for row in changed} == {ids[0]: "A0 renamed", new: "fresh"}
    assert {s["id"] for s in stones} == {ids[1], gone}  # created and deleted between polls: still a tombstone
    assert stones[0]["@odata.context"].endswith("$metadata#accounts/$deletedEntity")
    assert body["value"].index(stones[0]) > body["value"].index(changed[-1])  # upserts first, then deletions
    again = api.get(body["@odata.deltaLink"]).json()
    assert again["value"] == []


def test_track_changes_rejects_query_options(api: httpx.Client) -> None:
    for opt, value in (("$filter", "statecode eq 0"), ("$orderby", "name"), ("$expand", "primarycontactid"),
                       ("$top", "5")):
        r = api.get("accounts", params={opt: value}, headers=TRACK)
        assert r.status_code == 400
        assert r.json()["error"]["message"] == (
            f'The "{opt}" query parameter isn\'t supported when Change Tracking is enabled.')
    assert api.get("sdkmessages", headers=TRACK).status_code == 400  # not change-tracked


def test_expired_token_after_configured_days(api: httpx.Client, org: DataverseOrg) -> None:
    link = api.get("contacts?$select=fullname", headers=TRACK).json()["@odata.deltaLink"]
    org.change_tracking_days = 3
    real = org.clock
    org.clock = lambda: real() + dt.timedelta(days=3, hours=1)
    r = api.get(link)
    assert r.status_code == 400
    assert r.json()["error"] == {"code": "0x80044352", "message":
                                 "Version stamp associated with the client has expired. Please perform a full sync."}
    org.clock = real
    assert api.get(link).status_code == 200
    assert api.get("organizations", params={"$select": "expirechangetrackingindays"}).json()["value"][0][
        "expirechangetrackingindays"] == 3


def test_delta_count(api: httpx.Client) -> None:
    link = api.get("leads?$select=fullname", headers=TRACK).json()["@odata.deltaLink"]
    api.post("leads", json={"lastname": "New"})
    token = httpx.URL(link).params["$deltatoken"]
    assert api.get("leads/$count", params={"$deltatoken": token}).text == "1"
