"""Fixtures for connector tests: a fake clock, respx routers injected as transports, Dataverse metadata."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio
import respx

from crmsync_desktop.auth.msal_provider import StaticTokenProvider
from crmsync_desktop.sync.connectors.dataverse import DataverseConnector, DataverseSettings
from crmsync_desktop.sync.connectors.http.retry import RetryPolicy

ORG = "https://contoso.crm.example.com"
API = f"{ORG}/api/data/v9.2/"


class FakeClock:
    """Time only moves when someone sleeps; every sleep is recorded."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.start = datetime(2025, 1, 1, tzinfo=UTC)
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.t - 1000.0)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        await asyncio.sleep(0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def tokens() -> StaticTokenProvider:
    return StaticTokenProvider("token-1", "token-2", "token-3")


@pytest.fixture
def dv_router() -> respx.MockRouter:
    return respx.MockRouter(base_url=API, assert_all_called=False)


@pytest_asyncio.fixture
async def dv(dv_router: respx.MockRouter, clock: FakeClock, tokens: StaticTokenProvider) -> AsyncIterator[DataverseConnector]:
    connector = DataverseConnector(
        DataverseSettings(org_url=ORG, page_size=2, bulk_chunk=250, batch_size=50),
        tokens,
        transport=httpx.MockTransport(dv_router.async_handler),
        clock=clock,
        policy=RetryPolicy(max_attempts=5, rng=random.Random(7)),
    )
    yield connector
    await connector.aclose()


def label(text: str) -> dict[str, object]:
    return {"LocalizedLabels": [{"Label": text, "LanguageCode": 1033}], "UserLocalizedLabel": {"Label": text, "LanguageCode": 1033}}


ENTITIES = [
    {"LogicalName": "contact", "SchemaName": "Contact", "EntitySetName": "contacts", "DisplayName": label("Contact"),
     "DisplayCollectionName": label("Contacts"), "PrimaryIdAttribute": "contactid", "PrimaryNameAttribute": "fullname",
     "OwnershipType": "UserOwned", "ChangeTrackingEnabled": True, "IsIntersect": False, "IsCustomEntity": False},
    {"LogicalName": "account", "SchemaName": "Account", "EntitySetName": "accounts", "DisplayName": label("Account"),
     "PrimaryIdAttribute": "accountid", "PrimaryNameAttribute": "name", "OwnershipType": "UserOwned",
     "ChangeTrackingEnabled": False, "IsIntersect": False, "IsCustomEntity": False},
    {"LogicalName": "systemuser", "EntitySetName": "systemusers", "PrimaryIdAttribute": "systemuserid",
     "OwnershipType": "BusinessOwned"},
    {"LogicalName": "team", "EntitySetName": "teams", "PrimaryIdAttribute": "teamid", "OwnershipType": "BusinessOwned"},
    {"LogicalName": "role", "EntitySetName": "roles", "PrimaryIdAttribute": "roleid", "OwnershipType": "BusinessOwned"},
]


def attr(name: str, kind: str, **extra: object) -> dict[str, object]:
    return {"LogicalName": name, "SchemaName": name.title(), "AttributeType": kind,
            "AttributeTypeName": {"Value": f"{kind}Type"}, "DisplayName": label(name.title()), "AttributeOf": None,
            "IsValidForCreate": True, "IsValidForUpdate": True, "RequiredLevel": {"Value": "None"}, **extra}


CONTACT_ATTRS = [
    attr("contactid", "Uniqueidentifier", IsPrimaryId=True),
    attr("fullname", "String", IsPrimaryName=True),
    attr("parentcustomerid", "Customer"),
    attr("parentcustomeridname", "String", AttributeOf="parentcustomerid"),
    attr("ownerid", "Owner"),
    attr("versionnumber", "BigInt"),
    attr("preferredcontactmethodcode", "Picklist"),
    attr("interests", "Virtual", AttributeTypeName={"Value": "MultiSelectPicklistType"}),
]
ACCOUNT_ATTRS = [
    attr("accountid", "Uniqueidentifier", IsPrimaryId=True),
    attr("name", "String", IsPrimaryName=True),
    attr("primarycontactid", "Lookup"),
    attr("versionnumber", "BigInt"),
]
CONTACT_M2O = [
    {"SchemaName": "contact_customer_accounts", "ReferencedEntity": "account", "ReferencedAttribute": "accountid",
     "ReferencingEntity": "contact", "ReferencingAttribute": "parentcustomerid",
     "ReferencingEntityNavigationPropertyName": "parentcustomerid_account"},
    {"SchemaName": "contact_customer_contacts", "ReferencedEntity": "contact", "ReferencedAttribute": "contactid",
     "ReferencingEntity": "contact", "ReferencingAttribute": "parentcustomerid",
     "ReferencingEntityNavigationPropertyName": "parentcustomerid_contact"},
]
ACCOUNT_M2O = [
    {"SchemaName": "account_primary_contact", "ReferencedEntity": "contact", "ReferencedAttribute": "contactid",
     "ReferencingEntity": "account", "ReferencingAttribute": "primarycontactid",
     "ReferencingEntityNavigationPropertyName": "primarycontactid"},
]


def mock_metadata(router: respx.MockRouter) -> None:
    """Routes for the metadata the connector reads before touching records."""
    router.get("EntityDefinitions", name="entities").respond(200, json={"value": ENTITIES})
    for logical, attrs, m2o in (("contact", CONTACT_ATTRS, CONTACT_M2O), ("account", ACCOUNT_ATTRS, ACCOUNT_M2O)):
        base = f"EntityDefinitions(LogicalName='{logical}')"
        ent = next(e for e in ENTITIES if e["LogicalName"] == logical)
        router.get(base).respond(200, json={**ent, "Attributes": attrs})
        lookups = [{"LogicalName": a["LogicalName"], "Targets": ["account", "contact"] if a["AttributeType"] == "Customer"
                    else ["systemuser", "team"] if a["AttributeType"] == "Owner" else ["contact"]}
                   for a in attrs if a["AttributeType"] in ("Lookup", "Customer", "Owner")]
        router.get(f"{base}/Attributes/Microsoft.Dynamics.CRM.LookupAttributeMetadata").respond(200, json={"value": lookups})
        picklists = [{"LogicalName": "preferredcontactmethodcode", "OptionSet": {"Options": [
            {"Value": 1, "Label": label("Any")}, {"Value": 2, "Label": label("Email")}]}}] if logical == "contact" else []
        router.get(f"{base}/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata").respond(200, json={"value": picklists})
        for cast in ("MultiSelectPicklist", "State", "Status"):
            router.get(f"{base}/Attributes/Microsoft.Dynamics.CRM.{cast}AttributeMetadata").respond(200, json={"value": []})
        router.get(f"{base}/Attributes/Microsoft.Dynamics.CRM.StringAttributeMetadata").respond(
            200, json={"value": [{"LogicalName": "fullname" if logical == "contact" else "name", "MaxLength": 160}]})
        router.get(f"{base}/ManyToOneRelationships").respond(200, json={"value": m2o})
