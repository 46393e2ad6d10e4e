"""Configuration Export/Import: exact round trips, the golden file, and a precise error for every bad file."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from crmsync_desktop.domain import (
    AuthKind,
    ConflictPolicy,
    ConnectionProfile,
    ConnectionState,
    DeletionStrategy,
    EntityConfig,
    ProfileConfig,
    ScheduleConfig,
    ServerKind,
)
from crmsync_desktop.errors import ConfigFileError
from crmsync_desktop.sync import config_file
from crmsync_desktop.sync.config_file import (
    CURRENT_VERSION,
    FORMAT_MARKER,
    MAX_CONFIG_FILE_BYTES,
    config_to_document,
    export_config,
    migrate_document,
    parse_config,
    supported_versions,
)
from crmsync_desktop.sync.filters import MetadataMap

DATA = Path(__file__).resolve().parents[1] / "data" / "config"
EXPORTED_AT = datetime(2024, 5, 15, 8, 0, tzinfo=UTC)

OWNER_FILTER = (
    '<fetch version="1.0">\n  <entity name="account">\n    <filter type="and">\n'
    '      <condition attribute="ownerid" operator="eq-userid" />\n'
    '      <condition attribute="statecode" operator="eq" value="0" />\n'
    "    </filter>\n  </entity>\n</fetch>"
)
CONTACT_FILTER = (
    "<fetch><entity name='contact'><filter type='or'>"
    "<condition attribute='modifiedon' operator='last-x-days' value='30'/>"
    "<condition attribute='fullname' operator='like' value='%\"Ltd\"%'/></filter>"
    "<link-entity name='account' from='accountid' to='parentcustomerid' alias='L0'>"
    "<filter><condition attribute='ownerid' operator='eq-userid'/></filter></link-entity></entity></fetch>"
)
CONTACT_UPLOAD = (
    "<fetch><entity name='contact'><filter><condition attribute='statecode' operator='eq' "
    "value='0'/></filter></entity></fetch>"
)

FULL = ProfileConfig(
    profile=ConnectionProfile(
        name="Contoso – Production (Praha)",
        server_kind=ServerKind.DATAVERSE,
        server_url="https://contoso.crm4.dynamics.com",
        server_auth_kind=AuthKind.DEVICE_CODE,
        tenant_id="contoso.onmicrosoft.com",
        client_id="51f81489-12ee-4a9e-aaae-a2591f45987d",
        server_user="admin@contoso.onmicrosoft.com",
        client_url="https://contoso.app.resco.net",
        client_user="sync@contoso.com",
        state=ConnectionState.CONNECTED,
        metadata_updated_at=datetime(2024, 5, 14, 7, 45, 12, 345678, tzinfo=UTC),
        verify_tls=False,
    ),
    entities=(
        EntityConfig(
            "account",
            sync_filter=OWNER_FILTER,
            sync_deletion=True,
            deletion_strategy=DeletionStrategy.SWEEP,
            conflict_policy=ConflictPolicy.NEWER_WINS,
            fields=("name", "accountnumber", "ownerid", "statecode"),
        ),
        EntityConfig(
            "contact",
            enabled=False,
            sync_filter=CONTACT_FILTER,
            upload_filter=CONTACT_UPLOAD,
            deletion_strategy=DeletionStrategy.TRACKING,
            conflict_policy=ConflictPolicy.CLIENT_WINS,
        ),
        EntityConfig("resco_mobiletracking", deletion_strategy=DeletionStrategy.CHANGE_TRACKING),
    ),
    schedule=ScheduleConfig(enabled=False, interval_minutes=15, daily_at="06:30"),
)


def _doc() -> dict[str, Any]:
    return json.loads(export_config(FULL, exported_at=EXPORTED_AT))


def _bytes(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def _error(data: bytes, **kw: Any) -> str:
    with pytest.raises(ConfigFileError) as info:
        parse_config(data, **kw)
    assert info.value.title == "Cannot import this configuration file"
    return str(info.value)


# --- export and round trips ------------------------------------------------------------------------------


def test_round_trip_is_exact() -> None:
    data = export_config(FULL, exported_at=EXPORTED_AT)
    assert parse_config(data) == FULL
    assert export_config(parse_config(data), exported_at=EXPORTED_AT) == data


@pytest.mark.parametrize(
    "cfg",
    [
        ProfileConfig(ConnectionProfile("Defaults")),
        ProfileConfig(
            ConnectionProfile(
                "Resco server",
                server_kind=ServerKind.RESCO,
                server_auth_kind=AuthKind.PASSWORD,
                server_url="http://localhost:8080/org",
            ),
            (EntityConfig("account"),),
            ScheduleConfig(True, config_file.MAX_INTERVAL_MINUTES),
        ),
        ProfileConfig(ConnectionProfile("Daily at midnight"), schedule=ScheduleConfig(daily_at="00:00")),
        ProfileConfig(ConnectionProfile("Daily, off"), schedule=ScheduleConfig(False, 5, daily_at="23:59")),
        ProfileConfig(
            ConnectionProfile(
                "Offset time",
                metadata_updated_at=datetime(2024, 1, 31, 23, 30, tzinfo=timezone(timedelta(hours=-5))),
            )
        ),
    ],
)
def test_other_round_trips(cfg: ProfileConfig) -> None:
    assert parse_config(export_config(cfg)) == cfg


def test_export_is_deterministic_sorted_utf8_with_trailing_newline() -> None:
    first = export_config(FULL, exported_at=EXPORTED_AT)
    assert first == export_config(FULL, exported_at=EXPORTED_AT)
    text = first.decode("utf-8")
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert "Contoso – Production (Praha)" in text  # not \u-escaped
    keys = re.findall(r'^  "(\w+)":', text, flags=re.MULTILINE)
    assert keys == sorted(keys) == ["entities", "exported_at", "format", "profile", "schedule", "version"]
    assert '"metadata_updated_at": "2024-05-14T07:45:12.345678Z"' in text
    assert '"exported_at": "2024-05-15T08:00:00Z"' in text


def _all_keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value).union(*(_all_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_all_keys(v) for v in value))
    return set()


def test_export_writes_exactly_the_documented_keys_and_no_secret() -> None:
    keys = _all_keys(_doc())
    assert keys == {
        "format",
        "version",
        "exported_at",
        "profile",
        "entities",
        "schedule",
        "name",
        "server_kind",
        "server_url",
        "server_auth_kind",
        "tenant_id",
        "client_id",
        "server_user",
        "client_url",
        "client_user",
        "state",
        "metadata_updated_at",
        "verify_tls",
        "certificate_path",
        "logical_name",
        "enabled",
        "sync_filter",
        "upload_filter",
        "sync_deletion",
        "deletion_strategy",
        "conflict_policy",
        "fields",
        "interval_minutes",
        "daily_at",
    }
    assert not {k for k in keys if re.search("secret|password|token|credential|key", k)}


def test_naive_datetimes_are_exported_as_utc() -> None:
    cfg = ProfileConfig(ConnectionProfile("Naive", metadata_updated_at=datetime(2024, 5, 1, 12, 0)))
    data = export_config(cfg, exported_at=datetime(2024, 5, 2, 9, 0))
    assert b'"metadata_updated_at": "2024-05-01T12:00:00Z"' in data
    assert b'"exported_at": "2024-05-02T09:00:00Z"' in data
    assert parse_config(data).profile.metadata_updated_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_export_defaults_exported_at_to_now() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    stamp = json.loads(export_config(FULL))["exported_at"]
    assert before <= datetime.fromisoformat(stamp) <= datetime.now(UTC)


def test_golden_file_matches_the_exporter() -> None:
    """tests/data/config/good_full.json is this exporter's output; a format change must update it knowingly."""
    golden = (DATA / "good_full.json").read_bytes()
    assert export_config(FULL, exported_at=EXPORTED_AT) == golden
    assert parse_config(golden) == FULL


def test_a_version_1_file_without_daily_at_still_imports() -> None:
    """tests/data/config/good_full_v1.json is what the version-1 exporter wrote for FULL (no daily time)."""
    old = (DATA / "good_full_v1.json").read_bytes()
    assert json.loads(old)["version"] == 1 and "daily_at" not in json.loads(old)["schedule"]
    interval_only = replace(FULL, schedule=replace(FULL.schedule, daily_at=None))
    assert parse_config(old) == interval_only
    again = json.loads(export_config(parse_config(old), exported_at=EXPORTED_AT))
    assert (again["version"], again["schedule"]) == (
        CURRENT_VERSION, {"enabled": False, "interval_minutes": 15, "daily_at": None}
    )


def test_a_version_2_file_without_certificate_path_still_imports() -> None:
    """tests/data/config/good_full_v2.json is what the version-2 exporter wrote for FULL (no certificate path)."""
    old = (DATA / "good_full_v2.json").read_bytes()
    assert json.loads(old)["version"] == 2 and "certificate_path" not in json.loads(old)["profile"]
    assert parse_config(old) == FULL
    again = json.loads(export_config(parse_config(old), exported_at=EXPORTED_AT))
    assert (again["version"], again["profile"]["certificate_path"]) == (CURRENT_VERSION, "")


CERTIFICATE_PROFILE = ProfileConfig(
    ConnectionProfile(
        "Unattended",
        server_url="https://contoso.crm4.dynamics.com",
        server_auth_kind=AuthKind.CERTIFICATE,
        tenant_id="contoso.onmicrosoft.com",
        client_id="51f81489-12ee-4a9e-aaae-a2591f45987d",
        certificate_path="/etc/crmsync/contoso-sync.pfx",
    )
)


@pytest.mark.parametrize(
    "path", ["/etc/crmsync/contoso-sync.pfx", r"C:\ProgramData\crmsync\Contoso Sync.pfx", r"\\files\certs\c.pem"]
)
def test_the_certificate_path_round_trips_and_is_not_taken_for_a_secret(path: str) -> None:
    cfg = replace(CERTIFICATE_PROFILE, profile=replace(CERTIFICATE_PROFILE.profile, certificate_path=path))
    data = export_config(cfg, exported_at=EXPORTED_AT)
    assert json.loads(data)["profile"]["certificate_path"] == path
    assert parse_config(data) == cfg
    assert export_config(parse_config(data), exported_at=EXPORTED_AT) == data


def test_a_certificate_profile_exports_the_path_and_never_the_passphrase_or_key() -> None:
    text = export_config(CERTIFICATE_PROFILE, exported_at=EXPORTED_AT).decode()
    assert '"certificate_path": "/etc/crmsync/contoso-sync.pfx"' in text
    assert '"server_auth_kind": "certificate"' in text
    assert "passphrase" not in text.lower() and "private" not in text.lower() and "BEGIN" not in text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("certs/contoso.pfx", "profile.certificate_path: 'certs/contoso.pfx' is a relative path; write the full path"),
        ("contoso.pfx", "is a relative path"),
        (
            "-----BEGIN PRIVATE KEY-----\nMIIE...\n-----END PRIVATE KEY-----",
            ("profile.certificate_path: this is the certificate's content, not the path of its file. Secrets are "
             "never imported from files"),
        ),
        ("/etc/crmsync/c.pfx\n", "profile.certificate_path: expected the path of a certificate file"),
        (" /etc/c.pfx", "no leading or trailing spaces"),
        ("/" + "a" * 5000, "at most 4096 printable characters"),
        (42, "profile.certificate_path: expected text, got the number 42."),
        ({"path": "/etc/c.pfx"}, "profile.certificate_path: this looks like a secret."),  # only text is exempt
    ],
)
def test_a_bad_certificate_path_is_refused_with_its_json_path(value: Any, expected: str) -> None:
    doc = json.loads(export_config(CERTIFICATE_PROFILE, exported_at=EXPORTED_AT))
    doc["profile"]["certificate_path"] = value
    message = _error(_bytes(doc))
    assert expected in message, message


def test_only_the_certificate_path_is_exempt_from_the_secret_check() -> None:
    doc = json.loads(export_config(CERTIFICATE_PROFILE, exported_at=EXPORTED_AT))
    doc["profile"]["certificate_passphrase"] = "hunter22"
    assert "profile.certificate_passphrase: this looks like a secret." in _error(_bytes(doc))
    doc = json.loads(export_config(CERTIFICATE_PROFILE, exported_at=EXPORTED_AT))
    doc["entities"] = [{"logical_name": "account", "certificate_path": "/etc/c.pfx"}]
    assert "entities[0].certificate_path: this looks like a secret." in _error(_bytes(doc))


@pytest.mark.parametrize(
    ("daily_at", "expected"),
    [(None, None), ("06:30", "06:30"), ("6:05", "06:05"), (" 23:59 ", "23:59"), ("00:00", "00:00")],
)
def test_daily_at_is_optional_and_normalized(daily_at: str | None, expected: str | None) -> None:
    doc = _doc()
    doc["schedule"]["daily_at"] = daily_at
    assert parse_config(_bytes(doc)).schedule.daily_at == expected
    del doc["schedule"]["daily_at"]
    assert parse_config(_bytes(doc)).schedule.daily_at is None


def test_minimal_file_gets_every_default() -> None:
    cfg = parse_config((DATA / "good_minimal.json").read_bytes())
    assert cfg == ProfileConfig(ConnectionProfile("Minimal"))
    assert cfg.schedule == ScheduleConfig() and cfg.entities == ()


def test_byte_order_mark_is_accepted() -> None:
    assert parse_config(b"\xef\xbb\xbf" + export_config(FULL, exported_at=EXPORTED_AT)) == FULL


def test_known_entities_and_metadata_accept_a_matching_file() -> None:
    metadata = MetadataMap.from_mapping(
        {
            "account": {
                "name": "String",
                "accountnumber": "String",
                "ownerid": ("Owner", ["systemuser"]),
                "statecode": "State",
                "accountid": "Uniqueidentifier",
            },
            "contact": {
                "modifiedon": "DateTime",
                "fullname": "String",
                "statecode": "State",
                "parentcustomerid": ("Customer", ["account", "contact"]),
            },
            "resco_mobiletracking": {},
        }
    )
    data = export_config(FULL, exported_at=EXPORTED_AT)
    assert (
        parse_config(data, known_entities={"account", "contact", "resco_mobiletracking"}, metadata=metadata)
        == FULL
    )


# --- the required bad files ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        (
            "truncated.json",
            [
                "The file ends unexpectedly at line 12, column 1",
                "looks truncated",
                "Export the configuration again",
            ],
        ),
        (
            "wrong_version.json",
            [
                "version: this file has format version 4, written by a newer crmsync-desktop",
                "this version reads format version 1, 2, 3",
                "Update crmsync-desktop",
            ],
        ),
        (
            "unknown_entity_field.json",
            [
                "entities[1].sync_filters: unknown field 'sync_filters'. Did you mean 'sync_filter'?",
                "Remove it.",
            ],
        ),
        (
            "malformed_fetchxml.json",
            [
                (
                    "entities[3].sync_filter: The filter is not well-formed XML: mismatched tag "
                    "at line 1, column 120"
                )
            ],
        ),
        (
            "xml_bomb_filter.json",
            [
                (
                    "entities[0].upload_filter: The filter contains a document type declaration "
                    "(<!DOCTYPE lolz>)"
                ),
                "XML bomb",
            ],
        ),
        (
            "external_entity_filter.json",
            [
                "entities[0].sync_filter: The filter contains a document type declaration (<!DOCTYPE fetch>)",
                "read local files",
            ],
        ),
        (
            "secret_key.json",
            [
                "profile.client_secret: this looks like a secret.",
                "Secrets are never imported from files",
                "OS keyring",
            ],
        ),
        (
            "not_a_config.json",
            ["format: this is not a crmsync-desktop configuration file (its format is 'woodford/project')"],
        ),
    ],
)
def test_bad_files_give_precise_errors(name: str, fragments: list[str]) -> None:
    message = _error((DATA / name).read_bytes())
    for fragment in fragments:
        assert fragment in message, message


def test_bad_entity_errors_name_the_entity() -> None:
    with pytest.raises(ConfigFileError) as info:
        parse_config((DATA / "malformed_fetchxml.json").read_bytes())
    assert info.value.entity == "task"


# --- every other problem, table-driven -------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], Any]


def _set(path: str, value: Any) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        target: Any = doc
        keys = re.findall(r"[^.\[\]]+", path)
        for key in keys[:-1]:
            target = target[int(key)] if key.isdigit() else target[key]
        last = keys[-1]
        if value is _DELETE:
            del target[int(last) if last.isdigit() else last]
        elif last.isdigit():
            target[int(last)] = value
        else:
            target[last] = value

    return mutate


_DELETE = object()
GOOD_FILTER_OTHER_ENTITY = "<fetch><entity name='lead'/></fetch>"

MUTATIONS: list[tuple[str, Mutation, str]] = [
    (
        "missing format",
        _set("format", _DELETE),
        (
            "format: this is not a crmsync-desktop configuration file; expected "
            '"format": "crmsync-desktop/config"'
        ),
    ),
    ("version as text", _set("version", "1"), "version: expected a whole number, got the text '1'."),
    ("version as bool", _set("version", True), "version: expected a whole number, got true."),
    ("version missing", _set("version", _DELETE), "version: expected a whole number, got null."),
    (
        "version too old",
        _set("version", 0),
        "version: format version 0 is not supported; supported versions: 1, 2, 3.",
    ),
    (
        "unknown top-level",
        _set("comment", "hi"),
        (
            "comment: unknown field 'comment'. Allowed here: format, version, "
            "exported_at, profile, entities, schedule. Remove it."
        ),
    ),
    (
        "exported_at bad",
        _set("exported_at", "yesterday"),
        "exported_at: 'yesterday' is not an ISO-8601 date-time",
    ),
    (
        "exported_at number",
        _set("exported_at", 5),
        "exported_at: expected an ISO-8601 date-time text or null, got the number 5.",
    ),
    ("profile missing", _set("profile", _DELETE), "profile: this field is required."),
    ("profile list", _set("profile", []), "profile: expected an object {…}, got a list."),
    ("name missing", _set("profile.name", _DELETE), "profile.name: this field is required."),
    (
        "name blank",
        _set("profile.name", "  "),
        "profile.name: a profile name must be 1 to 200 printable characters.",
    ),
    ("name control", _set("profile.name", "a\nb"), "profile.name: a profile name must be 1 to 200"),
    ("name number", _set("profile.name", 42), "profile.name: expected text, got the number 42."),
    (
        "unknown profile field",
        _set("profile.servr_url", "x"),
        "profile.servr_url: unknown field 'servr_url'. Did you mean 'server_url'?",
    ),
    (
        "server_kind bad",
        _set("profile.server_kind", "salesforce"),
        "profile.server_kind: 'salesforce' is not allowed; use one of: dataverse, resco.",
    ),
    (
        "auth kind bad",
        _set("profile.server_auth_kind", "oauth"),
        (
            "profile.server_auth_kind: 'oauth' is not allowed; use one of: client_secret, certificate, device_code, "
            "interactive, password."
        ),
    ),
    (
        "auth kind number",
        _set("profile.server_auth_kind", 1),
        "profile.server_auth_kind: expected one of client_secret, certificate",
    ),
    (
        "state bad",
        _set("profile.state", "online"),
        "profile.state: 'online' is not allowed; use one of: disconnected, connected.",
    ),
    (
        "ftp url",
        _set("profile.server_url", "ftp://contoso.example"),
        "profile.server_url: 'ftp://contoso.example' is not an http(s) URL; use the organization address",
    ),
    (
        "url without host",
        _set("profile.client_url", "https://"),
        "profile.client_url: 'https://' is not an http(s) URL",
    ),
    ("url with space", _set("profile.client_url", "https://con toso.example"), "is not an http(s) URL"),
    (
        "url bad port",
        _set("profile.server_url", "https://contoso.example:99999"),
        "profile.server_url: 'https://contoso.example:99999' is not a valid URL.",
    ),
    (
        "url with password",
        _set("profile.server_url", "https://admin:hunter2@contoso.crm.dynamics.com"),
        "profile.server_url: the URL contains a user name or password. Secrets are never imported from files",
    ),
    (
        "client_id not guid",
        _set("profile.client_id", "my-app"),
        "profile.client_id: 'my-app' is not an application (client) id; it is a GUID",
    ),
    (
        "tenant bad",
        _set("profile.tenant_id", "contoso tenant"),
        "profile.tenant_id: 'contoso tenant' is not a tenant id",
    ),
    (
        "verify_tls text",
        _set("profile.verify_tls", "yes"),
        "profile.verify_tls: expected true or false, got the text 'yes'.",
    ),
    (
        "naive metadata time",
        _set("profile.metadata_updated_at", "2024-05-14T07:45:12"),
        "profile.metadata_updated_at: '2024-05-14T07:45:12' has no time zone; write it in UTC with a trailing Z.",
    ),
    ("entities object", _set("entities", {}), "entities: expected a list […], got an object."),
    (
        "entity text",
        _set("entities[1]", "contact"),
        "entities[1]: expected an object {…}, got the text 'contact'.",
    ),
    (
        "logical name missing",
        _set("entities[0].logical_name", _DELETE),
        "entities[0].logical_name: this field is required.",
    ),
    (
        "logical name case",
        _set("entities[0].logical_name", "Account"),
        "entities[0].logical_name: 'Account' is not an entity logical name",
    ),
    (
        "duplicate entity",
        _set("entities[2].logical_name", "account"),
        "entities[2].logical_name: 'account' is listed twice (also entities[0]); keep one entry per entity.",
    ),
    (
        "enabled as int",
        _set("entities[0].enabled", 1),
        "entities[0].enabled: expected true or false, got the number 1.",
    ),
    (
        "deletion strategy",
        _set("entities[1].deletion_strategy", "plugin"),
        "entities[1].deletion_strategy: 'plugin' is not allowed; use one of: off, sweep, tracking, change_tracking.",
    ),
    (
        "conflict policy",
        _set("entities[1].conflict_policy", "ask"),
        "entities[1].conflict_policy: 'ask' is not allowed; use one of: server_wins, client_wins, newer_wins, client_wins_full, manual.",
    ),
    (
        "fields text",
        _set("entities[0].fields", "name"),
        "entities[0].fields: expected a list of column names, got the text 'name'.",
    ),
    (
        "field bad",
        _set("entities[0].fields[1]", "Account Number"),
        "entities[0].fields[1]: expected a column logical name, got the text 'Account Number'.",
    ),
    (
        "field null",
        _set("entities[0].fields[0]", None),
        "entities[0].fields[0]: expected a column logical name, got null.",
    ),
    ("field twice", _set("entities[0].fields[2]", "name"), "entities[0].fields[2]: 'name' is listed twice"),
    (
        "filter for another entity",
        _set("entities[1].upload_filter", GOOD_FILTER_OTHER_ENTITY),
        "entities[1].upload_filter: This filter is for entity 'lead', but it is attached to 'contact'.",
    ),
    (
        "filter unknown operator",
        _set(
            "entities[0].sync_filter",
            "<fetch><entity name='account'><filter><condition "
            "attribute='x' operator='contains' value='a'/>"
            "</filter></entity></fetch>",
        ),
        (
            "entities[0].sync_filter: <condition attribute=\"x\"> at line 1, column 39: unknown operator 'contains'. "
            "Did you mean 'like'?"
        ),
    ),
    (
        "filter not text",
        _set("entities[0].sync_filter", None),
        "entities[0].sync_filter: this field is required.",
    ),
    ("schedule list", _set("schedule", []), "schedule: expected an object {…}, got a list."),
    (
        "interval zero",
        _set("schedule.interval_minutes", 0),
        "schedule.interval_minutes: 0 is out of range; use 1 to 10080 minutes (one week).",
    ),
    (
        "interval float",
        _set("schedule.interval_minutes", 60.5),
        "schedule.interval_minutes: expected a whole number of minutes, got the number 60.5.",
    ),
    (
        "interval bool",
        _set("schedule.interval_minutes", True),
        "expected a whole number of minutes, got true.",
    ),
    ("schedule unknown", _set("schedule.cron", "0 * * * *"), "schedule.cron: unknown field 'cron'."),
    (
        "daily_at out of range",
        _set("schedule.daily_at", "24:00"),
        (
            "schedule.daily_at: '24:00' is not a time of day; use HH:MM on the 24-hour clock (local time), "
            "like 06:30, or null to run every interval_minutes."
        ),
    ),
    ("daily_at with seconds", _set("schedule.daily_at", "06:30:00"), "schedule.daily_at: '06:30:00' is not"),
    ("daily_at empty", _set("schedule.daily_at", ""), "schedule.daily_at: '' is not a time of day"),
    (
        "daily_at number",
        _set("schedule.daily_at", 630),
        'schedule.daily_at: expected a time of day like "06:30" or null, got the number 630.',
    ),
    ("secret top-level", _set("secrets", {"x": 1}), "secrets: this looks like a secret."),
    (
        "secret nested",
        _set("profile.auth", {"client_secret": "s3cr3t"}),
        "profile.auth.client_secret: this looks like a secret.",
    ),
    (
        "password",
        _set("profile.password", "hunter2"),
        "profile.password: this looks like a secret. Secrets are never imported from files",
    ),
    (
        "token in entity",
        _set("entities[1].refreshToken", "x"),
        "entities[1].refreshToken: this looks like a secret.",
    ),
    (
        "certificate key",
        _set("profile.certificate-private-key", "x"),
        "profile.certificate-private-key: this looks like a secret.",
    ),
    (
        "secret inside a list",
        _set("entities[0].fields", [{"api_key": "x"}]),
        "entities[0].fields[0].api_key: this looks like a secret.",
    ),
]


@pytest.mark.parametrize(("label", "mutate", "expected"), MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_every_problem_is_reported_with_its_path(label: str, mutate: Mutation, expected: str) -> None:
    doc = _doc()
    mutate(doc)
    message = _error(_bytes(doc))
    assert expected in message, message


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "The file ends unexpectedly at line 1, column 1: it looks truncated"),
        (
            b'{"format": "crmsync-desktop/config",\n "version": 1,\n "profile": {"name": "x"',
            "The file ends unexpectedly at line 3, column 25",
        ),
        (
            b'{"format": "crmsync-desktop/config", "version": 1 "profile": {}}',
            "The file is not valid JSON: Expecting ',' delimiter at line 1, column 51.",
        ),
        (b"\xff\xfe{}", "The file is not UTF-8 text (invalid byte at offset 0)."),
        (
            b'{"format": "crmsync-desktop/config", "version": 1, "version": 1}',
            "The key 'version' appears twice in one object; keep only one of them.",
        ),
        (
            b'{"format": "crmsync-desktop/config", "version": NaN}',
            "The file is not valid JSON: NaN is not a valid JSON number.",
        ),
        (b"[1, 2]", "format: this is not a crmsync-desktop configuration file; expected"),
        (b'"crmsync-desktop/config"', "format: this is not a crmsync-desktop configuration file"),
        (b"[" * 100_000 + b"]" * 100_000, "The file is nested too deeply to be a configuration file."),
    ],
)
def test_unusable_json_is_reported(data: bytes, expected: str) -> None:
    message = _error(data)
    assert expected in message, message


def test_files_over_ten_megabytes_are_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*_: Any, **__: Any) -> Any:
        raise AssertionError("json.loads must not run on an oversized file")

    monkeypatch.setattr(config_file.json, "loads", never)
    message = _error(b" " * (MAX_CONFIG_FILE_BYTES + 1))
    assert (
        f"The file is {MAX_CONFIG_FILE_BYTES + 1:,} bytes; configuration files are at most 10,485,760 bytes"
        in message
    )
    monkeypatch.undo()
    padded = export_config(FULL, exported_at=EXPORTED_AT)
    padded += b" " * (MAX_CONFIG_FILE_BYTES - len(padded))  # exactly at the limit is fine
    assert parse_config(padded) == FULL


def test_known_entities_reject_unknown_names_with_a_suggestion() -> None:
    data = export_config(FULL, exported_at=EXPORTED_AT)
    with pytest.raises(ConfigFileError) as info:
        parse_config(data, known_entities={"account", "contacts", "resco_mobiletracking"})
    assert str(info.value) == (
        "entities[1].logical_name: unknown entity 'contact': the server organization has no "
        "such table. Did you mean 'contacts'? Remove the entry or update the server metadata."
    )
    assert info.value.entity == "contact"


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        (
            {"account": {"name": "String", "ownerid": "Owner", "statecode": "State"}},
            "entities[0].fields[1]: unknown column 'accountnumber' of 'account'. Remove it or update the server metadata.",
        ),
        (
            {
                "account": {
                    "name": "String",
                    "accountnumber": "String",
                    "ownerid": "String",
                    "statecode": "State",
                },
                "contact": {},
            },
            (
                "entities[0].sync_filter: The filter for 'account' has 1 problem:\n- account > condition 'ownerid': "
                "operator 'eq-userid' cannot be used on the string column 'ownerid'; it applies to lookup or id columns."
            ),
        ),
        (
            {
                "account": {
                    "name": "String",
                    "accountnumber": "String",
                    "ownerid": "Owner",
                    "statecode": "State",
                },
                "contact": {},
            },
            (
                "entities[1].sync_filter: The filter for 'contact' has 4 problems:\n- contact > condition 'modifiedon': "
                "unknown column 'modifiedon' of 'contact'."
            ),
        ),
        (
            {
                "account": {
                    "name": "String",
                    "accountnumber": "String",
                    "ownerid": "Owner",
                    "statecode": "State",
                }
            },
            "entities[1].logical_name: unknown entity 'contact': the server metadata has no such table.",
        ),
    ],
)
def test_metadata_checks_fields_and_filters(metadata: dict[str, Any], expected: str) -> None:
    message = _error(export_config(FULL, exported_at=EXPORTED_AT), metadata=metadata)  # a plain mapping works
    assert expected in message, message


# --- versions and migrations ----------------------------------------------------------------------------


def test_version_policy_today() -> None:
    assert CURRENT_VERSION == 3
    assert supported_versions() == (1, 2, 3)
    assert config_to_document(FULL, exported_at=EXPORTED_AT)["version"] == CURRENT_VERSION
    assert (
        config_to_document(FULL, exported_at=EXPORTED_AT)["format"]
        == FORMAT_MARKER
        == "crmsync-desktop/config"
    )


def test_migration_hook_upgrades_older_documents(monkeypatch: pytest.MonkeyPatch) -> None:
    def from_v0(doc: dict[str, Any]) -> dict[str, Any]:
        doc["profile"] = {"name": doc.pop("profile_name")}
        return doc

    monkeypatch.setitem(config_file.MIGRATIONS, 0, from_v0)
    assert supported_versions() == (0, 1, 2, 3)
    old = {"format": FORMAT_MARKER, "version": 0, "profile_name": "Legacy"}
    assert parse_config(_bytes(old)) == ProfileConfig(ConnectionProfile("Legacy"))
    message = _error(_bytes({"format": FORMAT_MARKER, "version": -1}))
    assert "version: format version -1 is not supported; supported versions: 0, 1, 2, 3." in message
    broken = {"format": FORMAT_MARKER, "version": 0}
    assert "version: the file could not be upgraded from format version 0: 'profile_name'." in _error(
        _bytes(broken)
    )


def test_migrate_document_chains_steps() -> None:
    steps = {1: lambda d: {**d, "a": 1}, 2: lambda d: {**d, "b": d["a"] + 1}}
    assert migrate_document({"version": 1}, 1, migrations=steps, current=3) == {"version": 3, "a": 1, "b": 2}
    assert supported_versions(steps, 3) == (1, 2, 3)
    with pytest.raises(
        ConfigFileError,
        match="format version 4, written by a newer crmsync-desktop; this version "
        "reads format version 1, 2, 3",
    ):
        migrate_document({}, 4, migrations=steps, current=3)


# --- the format document ---------------------------------------------------------------------------------


def test_format_document_describes_every_field() -> None:
    doc_text = (Path(__file__).resolve().parents[2] / "docs" / "config-format.md").read_text(encoding="utf-8")
    document = config_to_document(FULL, exported_at=EXPORTED_AT)
    names = (
        set(document) | set(document["profile"]) | set(document["entities"][0]) | set(document["schedule"])
    )
    missing = sorted(name for name in names if f"`{name}`" not in doc_text)
    assert missing == []
    for enum_cls in (ServerKind, AuthKind, ConnectionState, DeletionStrategy, ConflictPolicy):
        for member in enum_cls:
            assert f"`{member.value}`" in doc_text, member
    assert "never" in doc_text and "secret" in doc_text.lower()
