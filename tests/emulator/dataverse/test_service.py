"""Authentication, WhoAmI, service protection limits, fault injection, privileges, admin endpoints."""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import pytest

from crmsync_desktop.emulator.dataverse import DataverseOrg

from .conftest import APP, AUTHORIZE, BASE_HEADERS, ORG_URL, USER, entity_id


def test_whoami_and_auto_provisioned_users(api: httpx.Client, user_api: httpx.Client, org: DataverseOrg) -> None:
    r = api.get("WhoAmI")
    assert r.status_code == 200
    body = r.json()
    assert body["@odata.context"].endswith("$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse")
    assert body["OrganizationId"] == org.org_id and body["BusinessUnitId"] == org.root_business_unit_id
    assert r.headers["x-ms-dop-hint"] and "x-ms-ratelimit-burst-remaining-xrm-requests" in r.headers
    assert api.get("WhoAmI()").json()["UserId"] == body["UserId"]
    app_user = api.get(f"systemusers({body['UserId']})", params={
        "$select": "fullname,azureactivedirectoryobjectid,applicationid,accessmode,_businessunitid_value"}).json()
    assert app_user["azureactivedirectoryobjectid"] == APP.object_id and app_user["applicationid"] == APP.app_id
    assert app_user["accessmode"] == 4 and app_user["_businessunitid_value"] == org.root_business_unit_id
    user = user_api.get("WhoAmI").json()["UserId"]
    assert user != body["UserId"]
    person = api.get(f"systemusers({user})?$select=fullname,domainname").json()
    assert (person["fullname"], person["domainname"]) == (USER.display_name, USER.upn)


def test_401_without_and_with_bad_token(server: str) -> None:
    expected = f"Bearer authorization_uri={AUTHORIZE}, resource_id={ORG_URL}/"
    for headers in (BASE_HEADERS, {**BASE_HEADERS, "Authorization": "Bearer nope"}):
        r = httpx.get(f"{server}/api/data/v9.2/WhoAmI", headers=headers)
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"] == expected


def test_429_with_retry_after_under_small_limit(api: httpx.Client, org: DataverseOrg) -> None:
    org.set_limits(requests_per_window=3, window_seconds=60)
    assert [api.get("WhoAmI").status_code for _ in range(3)] == [200, 200, 200]
    r = api.get("WhoAmI")
    assert r.status_code == 429
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert r.json()["error"] == {"code": "0x80072322", "message":
                                 "Number of requests exceeded the limit of 3 over time window of 60 seconds."}
    org.set_limits(enabled=False)
    assert api.get("WhoAmI").status_code == 200


def test_concurrency_and_execution_time_limits(server: str, api: httpx.Client, org: DataverseOrg) -> None:
    org.set_limits(concurrent_requests=2)
    org.set_performance(latency_ms=400)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(lambda _: httpx.get(f"{server}/api/data/v9.2/WhoAmI", timeout=10, headers={
            **BASE_HEADERS, "Authorization": "Bearer token-app"}), range(4)))
    throttled = [r for r in codes if r.status_code == 429]
    assert throttled and all(r.json()["error"]["code"] == "0x80072326" for r in throttled)
    org.set_limits(concurrent_requests=52, execution_seconds_per_window=0.5)
    org.set_performance(latency_ms=300)
    api.get("WhoAmI")
    api.get("WhoAmI")
    r = api.get("WhoAmI")
    assert r.status_code == 429 and r.json()["error"]["code"] == "0x80072321" and "Retry-After" in r.headers


def test_latency_and_cost_per_record(api: httpx.Client, org: DataverseOrg) -> None:
    for i in range(20):
        api.post("accounts", json={"name": f"a{i}"})
    org.set_performance(latency_ms=100, cost_per_record_ms=10)
    t0 = time.perf_counter()
    assert len(api.get("accounts?$select=name").json()["value"]) == 20
    assert time.perf_counter() - t0 >= 0.3


def test_fault_5xx_and_added_latency(api: httpx.Client, org: DataverseOrg, admin: httpx.Client) -> None:
    assert admin.patch("faults", json={"error_rate": 1.0, "error_status": 503}).status_code == 200
    r = api.get("WhoAmI")
    assert r.status_code == 503 and r.json()["error"]["code"] == "0x8004A001"
    org.set_faults(error_status=500)
    assert api.get("WhoAmI").json()["error"]["code"] == "0x80040216"
    admin.delete("faults")
    admin.patch("faults", json={"added_latency_ms": 250})
    t0 = time.perf_counter()
    assert api.get("WhoAmI").status_code == 200
    assert time.perf_counter() - t0 >= 0.25
    assert admin.get("config").json()["faults"]["added_latency_ms"] == 250


def test_fault_dropped_connection_and_offline(api: httpx.Client, org: DataverseOrg, admin: httpx.Client) -> None:
    org.set_faults(drop_rate=1.0)
    with pytest.raises(httpx.TransportError):
        api.get("WhoAmI")
    org.clear_faults()
    assert api.get("WhoAmI").status_code == 200
    assert admin.put("offline", json={"offline": True}).json()["faults"]["offline"] is True
    with pytest.raises(httpx.TransportError):
        api.get("accounts")
    assert admin.get("config").status_code == 200  # the admin API stays reachable
    admin.put("offline", json={"offline": False})
    assert api.get("accounts").status_code == 200


def test_fault_429_burst(api: httpx.Client, admin: httpx.Client) -> None:
    admin.patch("faults", json={"throttle_burst": 2, "throttle_retry_after_s": 7})
    first, second, third = api.get("WhoAmI"), api.get("WhoAmI"), api.get("WhoAmI")
    assert (first.status_code, second.status_code, third.status_code) == (429, 429, 200)
    assert first.headers["Retry-After"] == "7" and first.json()["error"]["code"] == "0x80072322"


def test_fault_expire_all_delta_tokens(api: httpx.Client, admin: httpx.Client) -> None:
    link = api.get("accounts?$select=name", headers={"Prefer": "odata.track-changes"}).json()["@odata.deltaLink"]
    assert admin.post("expire-delta-tokens").status_code == 200
    r = api.get(link)
    assert r.status_code == 400 and r.json()["error"]["code"] == "0x80044352"
    fresh = api.get("accounts?$select=name", headers={"Prefer": "odata.track-changes"}).json()["@odata.deltaLink"]
    assert api.get(fresh).status_code == 200


def test_fault_concurrency_race(api: httpx.Client, org: DataverseOrg) -> None:
    aid = entity_id(api.post("accounts", json={"name": "raced"}))
    etag = api.get(f"accounts({aid})").headers["ETag"]
    org.set_faults(race_rate=1.0)
    r = api.patch(f"accounts({aid})", json={"name": "mine"}, headers={"If-Match": etag})
    assert r.status_code == 412 and r.json()["error"]["code"] == "0x80060882"
    org.clear_faults()
    assert api.get(f"accounts({aid})?$select=name").json()["name"] == "raced"
    etag = api.get(f"accounts({aid})").headers["ETag"]
    assert api.patch(f"accounts({aid})", json={"name": "mine"}, headers={"If-Match": etag}).status_code == 204


def test_faults_from_startup_config(tmp_path, server: str) -> None:  # type: ignore[no-untyped-def]
    from crmsync_desktop.emulator.auth_protocol import StaticBearerAuthenticator
    from crmsync_desktop.emulator.dataverse import Faults, create_app

    from .conftest import run_uvicorn

    org = DataverseOrg.create(tmp_path / "faulty.db", faults=Faults(error_rate=1.0, error_status=502))
    try:
        reopened = DataverseOrg.open(tmp_path / "faulty.db", url="https://other.crm.dynamics.com/")
        assert reopened.faults.error_rate == 1.0 and reopened.url == "https://other.crm.dynamics.com"
        auth = StaticBearerAuthenticator({"t": APP}, AUTHORIZE)
        with run_uvicorn(create_app(reopened, auth)) as url:
            r = httpx.get(f"{url}/api/data/v9.2/WhoAmI", headers={"Authorization": "Bearer t"})
            assert r.status_code == 502
        reopened.close()
    finally:
        org.close()


def test_privilege_denied(api: httpx.Client, admin: httpx.Client) -> None:
    admin.post("privileges/deny", json={"object_id": APP.object_id, "privilege": "prvWriteAccount"})
    aid = entity_id(api.post("accounts", json={"name": "p"}))
    r = api.patch(f"accounts({aid})", json={"name": "q"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "0x80040220"
    assert "is missing prvWriteAccount privilege" in r.json()["error"]["message"]
    admin.post("privileges/allow", json={"object_id": APP.object_id, "privilege": "prvWriteAccount"})
    assert api.patch(f"accounts({aid})", json={"name": "q"}).status_code == 204


def test_admin_rejects_unknown_settings(admin: httpx.Client) -> None:
    r = admin.patch("limits", json={"no_such_limit": 1})
    assert r.status_code == 400
    assert admin.patch("limits", json={"enabled": False}).json()["limits"]["enabled"] is False
    assert admin.put("change-tracking", json={"days": 30}).json()["change_tracking_days"] == 30
