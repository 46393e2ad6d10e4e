"""Owner mapping: a client organization with its own users (same emails, other GUIDs).

Sync All writes records owned by the client's matching user and creates no duplicate users; a
client assignment uploads as the server user; download then capture queues nothing (no echo); an
ambiguous email is reported and not mapped; the mapping is shown in the run log, by the facade and
by ``crmsync users``.
"""

from __future__ import annotations

import argparse
import json

from crmsync_desktop.cli import commands
from crmsync_desktop.domain import EntityConfig, RunStatus, TransactionOperation, TransactionStatus
from crmsync_desktop.store import repos
from crmsync_desktop.sync.connectors.types import LookupValue
from crmsync_desktop.sync.owner_mapping import UserStatus, match_users
from crmsync_desktop.sync.profiles import ProfileService
from tests.sync.engine.conftest import PROFILE, Rig
from tests.sync.engine.test_engine_download import _id, connect_and_enable

ALICE, BOB, CAROL, DAVE = (_id(n, "u") for n in range(1, 5))  # server users
C_ADMIN, C_ALICE, C_BOB1, C_BOB2, C_CAROL = (_id(n, "w") for n in range(1, 6))  # the client's own users


def user(uid: str) -> LookupValue:
    return LookupValue("systemuser", uid)


def seed(rig: Rig) -> dict[str, str]:
    """Server users and accounts; Connect; the client organization's own users (after Connect made the table)."""
    bu = LookupValue("businessunit", rig.server.business_unit_id)
    for uid, name in ((ALICE, "alice@example.com"), (BOB, "bob@example.com"), (CAROL, "CONTOSO\\carol"),
                      (DAVE, "dave@example.com")):
        rig.server.put("systemuser", {"systemuserid": uid, "lastname": name.split("@")[0], "domainname": name,
                                      "businessunitid": bu})
    accounts = {"alice": _id(1), "sync": _id(2), "dave": _id(3), "bob": _id(4), "carol": _id(5)}
    owners = {"alice": ALICE, "sync": rig.server.user_id, "dave": DAVE, "bob": BOB, "carol": CAROL}
    for key, rid in accounts.items():
        rig.server.put("account", {"accountid": rid, "name": f"Account of {key}", "statecode": 0,
                                   "ownerid": user(owners[key])})
    connect_and_enable(rig, EntityConfig("account"))
    for uid, values in ((C_ADMIN, {"domainname": "Sync@Example.com"}),
                        (C_ALICE, {"domainname": "alice@contoso.onmicrosoft.com",
                                   "internalemailaddress": "alice@example.com"}),
                        (C_BOB1, {"domainname": "bob@example.com"}),
                        (C_BOB2, {"domainname": "robert@example.com", "internalemailaddress": "BOB@example.com"}),
                        (C_CAROL, {"domainname": "carol@contoso.com"})):
        rig.client.put("systemuser", {client_pid(rig): uid, "lastname": "client user", **values})
    return accounts


def client_pid(rig: Rig) -> str:
    """The client organization's name for the user key (Resco: ``id``; matched to the server's by role)."""
    return rig.run(rig.client.get_entity("systemuser")).primary_id


def client_users(rig: Rig) -> set[str]:
    return {str(r[client_pid(rig)]) for r in rig.client.records("systemuser")}


def test_sync_all_owns_records_by_the_clients_own_users_without_duplicates(rig: Rig) -> None:
    accounts = seed(rig)
    before = client_users(rig)
    result = rig.run(rig.engine.sync(PROFILE, full=True))
    assert result.status is RunStatus.SUCCEEDED, result.error

    assert rig.client.get("account", accounts["alice"])["ownerid"] == user(C_ALICE)
    assert rig.client.get("account", accounts["sync"])["ownerid"] == user(C_ADMIN)
    assert rig.client.get("account", accounts["carol"])["ownerid"] == user(C_CAROL)  # CONTOSO\carol
    assert rig.client.get("account", accounts["dave"])["ownerid"] == user(DAVE)  # unmatched: created
    assert rig.client.get("account", accounts["bob"])["ownerid"] == user(BOB)  # ambiguous: not mapped, created
    # No duplicate users: only the unmatched and the ambiguous server users were created on the client.
    assert client_users(rig) == before | {DAVE, BOB}
    assert result.counts["systemuser"]["mapped"] == 3

    lines = [(line.level, line.message) for line in rig.run(rig.engine.run_log(result.run_id))]
    summary = ("User mapping: 3 server user(s) mapped by email to the client's own users, 0 with the same id, "
               "1 created on the client, 1 ambiguous")
    assert ("INFO", summary) in lines
    assert any(level == "WARNING" and "bob@example.com" in text and C_BOB1 in text and C_BOB2 in text
               for level, text in lines)

    # Echo-free: the download's own writes (carrying client user ids) are not client changes.
    uploads = rig.engine.uploads(PROFILE)
    assert rig.run(uploads.capture_once()) == 0
    again = rig.run(rig.engine.sync(PROFILE))
    assert again.status is RunStatus.SUCCEEDED, again.error
    assert again.counts.get("account", {}).get("updated", 0) == 0
    assert rig.run(uploads.capture_once()) == 0
    _, report = rig.run(rig.engine.verify(PROFILE, ["account"]))
    assert report is not None and report.in_sync, report.entities
    rig.run(rig.engine.aclose())


def test_client_assignment_and_create_upload_as_the_server_user(rig: Rig) -> None:
    accounts = seed(rig)
    assert rig.run(rig.engine.sync(PROFILE, full=True)).status is RunStatus.SUCCEEDED
    uploads = rig.engine.uploads(PROFILE)
    assert rig.run(uploads.capture_once()) == 0
    pid = rig.run(rig.client.get_entity("account")).primary_id

    rig.client.put("account", {pid: accounts["sync"], "ownerid": user(C_ALICE)})  # assigned on the client
    new = _id(99)
    rig.client.put("account", {pid: new, "name": "created on the client", "ownerid": user(C_CAROL)})
    assert rig.run(uploads.capture_once()) == 2
    queued = rig.run(uploads.list(TransactionStatus.PENDING)).items
    ops = {(t.record_id, t.operation) for t in queued}
    assert (accounts["sync"], TransactionOperation.ASSIGN) in ops and (new, TransactionOperation.CREATE) in ops
    assign = next(t for t in queued if t.operation is TransactionOperation.ASSIGN)
    assert assign.payload["owner"] == {"@lookup": ["systemuser", ALICE]}  # the server user, in the queue already

    result = rig.run(uploads.drain_once())
    assert result.delivered == 2 and result.failed == 0
    assert rig.server.get("account", accounts["sync"])["ownerid"] == user(ALICE)
    assert rig.server.get("account", new)["ownerid"] == user(CAROL)  # kept: the server knows the user

    after = rig.run(rig.engine.sync(PROFILE))
    assert after.status is RunStatus.SUCCEEDED, after.error
    assert after.counts.get("account", {}).get("updated", 0) == 0  # the server's echo is not written back
    assert rig.client.get("account", accounts["sync"])["ownerid"] == user(C_ALICE)
    assert rig.run(uploads.capture_once()) == 0
    rig.run(rig.engine.aclose())


def test_a_server_change_to_an_owned_record_keeps_the_client_owner(rig: Rig) -> None:
    accounts = seed(rig)
    rig.run(rig.engine.sync(PROFILE, full=True))
    rig.server.put("account", {"accountid": accounts["alice"], "name": "renamed on the server"})
    rig.server.put("account", {"accountid": accounts["dave"], "ownerid": user(ALICE)})  # reassigned on the server
    result = rig.run(rig.engine.sync(PROFILE))
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert rig.client.get("account", accounts["alice"])["ownerid"] == user(C_ALICE)
    assert rig.client.get("account", accounts["dave"])["ownerid"] == user(C_ALICE)
    assert rig.run(rig.engine.uploads(PROFILE).capture_once()) == 0
    rig.run(rig.engine.aclose())


def test_connect_logs_the_mapping_and_the_facade_and_cli_show_it(rig: Rig, capsys) -> None:  # type: ignore[no-untyped-def]
    seed(rig)
    result, _ = rig.run(rig.engine.connect(PROFILE))  # connecting again, now that the client has its users
    assert result.status is RunStatus.SUCCEEDED, result.error
    messages = [line.message for line in rig.run(rig.engine.run_log(result.run_id))]
    assert any(m.startswith("User mapping: 3 server user(s) mapped") for m in messages)
    assert any("dave@example.com" in m and "created on the client" in m for m in messages)

    matches = {m.server_id: m for m in rig.run(rig.engine.user_mapping(PROFILE))}
    assert matches[ALICE].status is UserStatus.MAPPED and matches[ALICE].client_id == C_ALICE
    assert matches[rig.server.user_id].client_id == C_ADMIN
    assert matches[CAROL].status is UserStatus.MAPPED and matches[CAROL].client_id == C_CAROL
    assert matches[DAVE].status is UserStatus.CREATED and matches[DAVE].client_id is None
    assert matches[BOB].status is UserStatus.AMBIGUOUS and matches[BOB].candidates == tuple(sorted((C_BOB1, C_BOB2)))

    ctx = commands.Context(args=argparse.Namespace(profile=PROFILE, json=True), db=rig.db, engine=rig.engine,
                           profiles=ProfileService(rig.db), credentials=None)  # type: ignore[arg-type]
    outcome = rig.run(commands.users(ctx))
    assert outcome.exit_code == 0
    rows = {row["server_id"]: row for row in json.loads(json.dumps(outcome.data))}
    assert rows[ALICE] == {"server_id": ALICE, "server_email": "alice@example.com", "client_id": C_ALICE,
                           "status": "mapped-by-email", "candidates": []}
    assert "mapped-by-email" in outcome.text and C_ALICE in outcome.text and "ambiguous" in outcome.text

    rig.run(rig.engine.sync(PROFILE, full=True))  # the unmatched (and the ambiguous) user now exist with their id
    after = {m.server_id: m for m in rig.run(rig.engine.user_mapping(PROFILE))}
    assert after[DAVE].status is UserStatus.SAME_ID and after[ALICE].status is UserStatus.MAPPED
    rig.run(rig.engine.aclose())


def test_a_user_no_longer_mapped_is_created_at_the_next_sync(rig: Rig) -> None:
    accounts = seed(rig)
    rig.run(rig.engine.sync(PROFILE, full=True))
    assert ALICE not in client_users(rig)
    rig.run(rig.client.delete_many("systemuser", [C_ALICE]))  # the client's own Alice is removed
    result = rig.run(rig.engine.sync(PROFILE))
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert ALICE in client_users(rig)  # fetched again by id and created
    assert rig.client.get("account", accounts["alice"])["ownerid"] == user(ALICE)  # records follow
    assert rig.run(repos.list_download_retries(rig.db, PROFILE, "systemuser")) == {}
    rig.run(rig.engine.aclose())


# -- matching rules (pure) ----------------------------------------------------------------------------


def _u(uid: str, **values: str) -> dict[str, object]:
    return {"systemuserid": uid, **values}


def test_matching_rules() -> None:
    mapping = match_users(
        [_u("s1", domainname="A@x.com"), _u("s2", domainname="DOM\\b"), _u("s3", domainname="DOM\\c"),
         _u("s4", domainname="d@x.com"), _u("s5", internalemailaddress="d@x.com"), _u("s6", domainname="e@x.com"),
         _u("c9", domainname="same@x.com")],
        [_u("c1", internalemailaddress="a@X.com"), _u("c2", domainname="b@dom.com"),
         _u("c3", domainname="c@one.com"), _u("c4", domainname="c@two.com"), _u("c5", domainname="d@x.com"),
         _u("c9", domainname="whatever@x.com"), _u("c8", domainname="same@x.com")],
    )
    status = {m.server_id: (m.status, m.client_id) for m in mapping.matches}
    assert status["s1"] == (UserStatus.MAPPED, "c1")  # case-insensitive, across fields
    assert status["s2"] == (UserStatus.MAPPED, "c2")  # DOMAIN\user <-> user@domain, one candidate
    assert status["s3"] == (UserStatus.AMBIGUOUS, None)  # two candidates for the local part
    assert status["s4"] == status["s5"] == (UserStatus.AMBIGUOUS, None)  # two server users claim one client user
    assert status["s6"] == (UserStatus.CREATED, None)
    assert status["c9"] == (UserStatus.SAME_ID, "c9")  # the same id wins over any email
    assert mapping.to_client == {"s1": "c1", "s2": "c2"} and mapping.to_server == {"c1": "s1", "c2": "s2"}
    record = {"accountid": "r", "ownerid": user("s1"), "parentaccountid": LookupValue("account", "s1")}
    assert mapping.client_record(record)["ownerid"] == user("c1")
    assert mapping.client_record(record)["parentaccountid"] == LookupValue("account", "s1")  # not a user lookup
    assert mapping.server_record(mapping.client_record(record)) == record
