"""``crmsync``: the headless command line (no Qt is imported), for scripts and the dedicated sync machine.

Exit codes: 0 success; 2 bad input (usage, a bad configuration file or filter); 3-8 the
``exit_code`` of the domain error (see ``errors.py``: keyring, sign-in, server, network, local
database, unknown profile); 9 a run finished with errors; 10 Verify found differences.
``--json`` prints one JSON document on stdout, errors included, so scripts never parse prose.
Secrets are never taken from the command line: ``profiles set-secret`` reads them from stdin (or a
prompt on a terminal); a certificate's passphrase for ``profiles add --certificate`` comes from
``CRMSYNC_CERTIFICATE_PASSPHRASE``, the keyring, a prompt or stdin, and goes to the keyring.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from crmsync_desktop import __version__
from crmsync_desktop.auth.credentials import CredentialStore, SecretKind
from crmsync_desktop.cli import commands
from crmsync_desktop.cli.output import TerminalProgress, emit
from crmsync_desktop.errors import CrmSyncError
from crmsync_desktop.logs import setup_logging
from crmsync_desktop.paths import resolve_paths
from crmsync_desktop.store.migrate import open_store
from crmsync_desktop.sync.engine import SyncEngine
from crmsync_desktop.sync.organizations import ProfileConnectorFactory
from crmsync_desktop.sync.profiles import ProfileService

log = logging.getLogger(__name__)

CA_BUNDLE_ENV = "CRMSYNC_CA_BUNDLE"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crmsync", description="crmsync-desktop headless command line.")
    parser.add_argument("--version", action="version", version=f"crmsync-desktop {__version__}")
    parser.add_argument("--data-dir", help="keep all data, logs and settings under this folder (or set CRMSYNC_HOME)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument("-v", "--verbose", action="store_true", help="also log to stderr")
    parser.add_argument("--ca-bundle", default=os.environ.get(CA_BUNDLE_ENV),
                        help=f"extra CA certificate (PEM) to trust, e.g. the emulator's (or set {CA_BUNDLE_ENV})")
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")

    profiles = groups.add_parser("profiles", help="connection profiles")
    profiles_sub = profiles.add_subparsers(dest="action", required=True)
    profiles_sub.add_parser("list", help="list the connection profiles").set_defaults(run=commands.profiles_list)
    add = profiles_sub.add_parser("add", help="create or update a connection profile (no secrets here)")
    add.add_argument("name")
    add.add_argument("--server-kind", choices=["dataverse", "resco"], default="dataverse")
    add.add_argument("--server-url", required=True)
    add.add_argument("--auth", choices=["client_secret", "certificate", "device_code", "interactive", "password"],
                     default=None, help="how to sign in to the server (default: certificate with --certificate, "
                                        "else the profile's current method, else client_secret)")
    add.add_argument("--certificate", metavar="PATH",
                     help="certificate sign-in: the PFX/PKCS#12 or PEM file with the private key and the "
                          "certificate (the path is stored, the file is checked now and its thumbprint shown). "
                          f"A passphrase, if the file has one, is taken from {commands.PASSPHRASE_ENV}, or the "
                          "one already in the keyring, or asked for (read from stdin when it is not a terminal), "
                          "and stored in the OS keyring")
    add.add_argument("--tenant", default="", help="Entra ID tenant (optional: discovered from the organization)")
    add.add_argument("--client-id", default="", help="application (client) id of the app registration")
    add.add_argument("--server-user", default="")
    add.add_argument("--client-url", required=True, help="the Resco Cloud organization URL")
    add.add_argument("--client-user", required=True)
    add.add_argument("--no-verify-tls", action="store_true",
                     help="DANGEROUS, for test organizations only: accept any server certificate for this profile "
                          "(a WARNING is logged on every connection). Default: certificates are verified; "
                          "use --ca-bundle for an organization with its own certificate authority")
    add.set_defaults(run=commands.profiles_add)
    secret = profiles_sub.add_parser("set-secret", help="store a secret in the OS keyring, read from stdin")
    secret.add_argument("name")
    secret.add_argument("kind", choices=[k.value for k in SecretKind])
    secret.set_defaults(run=commands.profiles_set_secret)

    config = groups.add_parser("config", help="export or import a profile's configuration (never secrets)")
    config_sub = config.add_subparsers(dest="action", required=True)
    export = config_sub.add_parser("export", help="write a profile's configuration to a file")
    export.add_argument("profile")
    export.add_argument("file")
    export.set_defaults(run=commands.config_export)
    imp = config_sub.add_parser("import", help="check a configuration file, then store it (all or nothing)")
    imp.add_argument("file")
    imp.set_defaults(run=commands.config_import)

    connect = groups.add_parser("connect", help="create or extend the client organization from the server's metadata")
    connect.add_argument("profile")
    connect.add_argument("--entity", action="append", help="only these server entities (repeatable)")
    connect.set_defaults(run=commands.connect)
    update = groups.add_parser("update-metadata", help="copy the server's metadata changes to the client (Update Server)")
    update.add_argument("profile")
    update.set_defaults(run=commands.update_metadata)
    disconnect = groups.add_parser("disconnect", help="end the connection: forget sync state and stored secrets")
    disconnect.add_argument("profile")
    disconnect.add_argument("--yes", action="store_true", help="confirm")
    disconnect.set_defaults(run=commands.disconnect)

    entities = groups.add_parser("entities", help="which entities synchronize, and how")
    entities_sub = entities.add_subparsers(dest="action", required=True)
    elist = entities_sub.add_parser("list", help="the entities with their settings and state")
    elist.add_argument("profile")
    elist.set_defaults(run=commands.entities_list)
    for name, enable in (("enable", True), ("disable", False)):
        p = entities_sub.add_parser(name, help=f"{name} entities for synchronization")
        p.add_argument("profile")
        p.add_argument("entities", nargs="+")
        p.set_defaults(run=commands.entities_enable, enable=enable)
    sf = entities_sub.add_parser("set-filter", help="set an entity's sync filter (or upload filter) from FetchXML")
    sf.add_argument("profile")
    sf.add_argument("entity")
    source = sf.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", help="a FetchXML file")
    source.add_argument("--xml", help="FetchXML text ('' clears the filter)")
    sf.add_argument("--upload", action="store_true", help="set the upload filter instead of the sync filter")
    sf.set_defaults(run=commands.entities_set_filter)
    sd = entities_sub.add_parser("set-deletion", help="switch Sync Deletion on or off for an entity")
    sd.add_argument("profile")
    sd.add_argument("entity")
    sd.add_argument("state", choices=["on", "off"])
    sd.add_argument("--strategy", choices=["auto", "sweep", "tracking", "change_tracking"], default="auto")
    sd.set_defaults(run=commands.entities_set_deletion)

    sync = groups.add_parser("sync", help="download server changes (incremental; --full for everything)")
    sync.add_argument("profile")
    sync.add_argument("--full", action="store_true")
    sync.add_argument("--entity", action="append", help="only these entities (repeatable)")
    sync.add_argument("--dry-run", action="store_true", help="show what would change; write nothing")
    sync.set_defaults(run=commands.sync)
    verify = groups.add_parser("verify", help="compare both organizations for the enabled entities")
    verify.add_argument("profile")
    verify.add_argument("--entity", action="append")
    verify.set_defaults(run=commands.verify)
    users = groups.add_parser("users", help="how the server's users map to the client's users (owner mapping)")
    users.add_argument("profile")
    users.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print machine-readable JSON")
    users.set_defaults(run=commands.users)
    status = groups.add_parser("status", help="connection, entities and the last runs of a profile")
    status.add_argument("profile")
    status.set_defaults(run=commands.status)

    sched = groups.add_parser("schedule", help="the periodic download of a profile: every N minutes, "
                                                "daily at a local time, or off (no option: show it)")
    sched.add_argument("profile")
    when = sched.add_mutually_exclusive_group()
    when.add_argument("--every", type=int, metavar="MINUTES", help="every MINUTES minutes (1 to 10080)")
    when.add_argument("--daily", metavar="HH:MM",
                      help="once a day at this local time (24-hour clock, e.g. 06:30)")
    when.add_argument("--off", action="store_true", help="switch the schedule off (its times are kept)")
    sched.set_defaults(run=commands.schedule)

    tx = groups.add_parser("transactions", help="the Offline Transactions queue (client changes to the server)")
    tx_sub = tx.add_subparsers(dest="action", required=True)
    tlist = tx_sub.add_parser("list", help="transactions, newest first")
    tlist.add_argument("profile")
    tlist.add_argument("--status", choices=["all", "pending", "processed", "error", "archived"], default="error")
    tlist.add_argument("--limit", type=int, default=50)
    tlist.set_defaults(run=commands.transactions_list)
    for name, helptext in (("retry", "set the given transactions back to Pending"),
                           ("archive", "set the given transactions to Archived (never sent)")):
        p = tx_sub.add_parser(name, help=helptext)
        p.add_argument("profile")
        p.add_argument("ids", nargs="+", type=int)
        p.set_defaults(run=commands.transactions_set, to=name)
    terr = tx_sub.add_parser("retry-errors", help="set every transaction in Error back to Pending")
    terr.add_argument("profile")
    terr.set_defaults(run=commands.transactions_retry_errors)

    service = groups.add_parser("run", help="service mode: upload client changes continuously and download "
                                            "server changes on the schedule, until stopped (Ctrl+C / SIGTERM)")
    service.set_defaults(run=commands.run_service)

    runs = groups.add_parser("runs", help="run history")
    runs_sub = runs.add_subparsers(dest="action", required=True)
    rlist = runs_sub.add_parser("list", help="recent runs")
    rlist.add_argument("profile", nargs="?")
    rlist.add_argument("--limit", type=int, default=20)
    rlist.set_defaults(run=commands.runs_list)
    rshow = runs_sub.add_parser("show", help="one run with its log")
    rshow.add_argument("run_id", type=int)
    rshow.set_defaults(run=commands.runs_show)
    return parser


async def _run(args: argparse.Namespace) -> commands.Outcome:
    paths = args.paths
    db = await asyncio.to_thread(open_store, paths.database, paths.backups_dir)
    credentials = CredentialStore()
    factory = ProfileConnectorFactory(
        credentials, token_cache_path=paths.token_cache, ca_bundle=args.ca_bundle, on_device_code=_print_device_code
    )
    engine = SyncEngine(db, factory, credentials=credentials)
    progress = TerminalProgress(enabled=not args.json)
    engine.bus.subscribe(progress)
    ctx = commands.Context(args=args, db=db, engine=engine, profiles=ProfileService(db), credentials=credentials)
    try:
        return await args.run(ctx)
    finally:
        progress.clear()
        await engine.aclose()
        factory.close()
        await asyncio.to_thread(db.close)


def _print_device_code(prompt: Any) -> None:
    print(prompt.message, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.paths = resolve_paths(args.data_dir).ensure()
    logging_setup = setup_logging(args.paths.log_file, console=args.verbose)
    try:
        outcome = asyncio.run(_run(args))
    except CrmSyncError as exc:
        log.warning("%s: %s", exc.title, exc.message)
        error = {"type": type(exc).__name__, "title": exc.title, "message": exc.message}
        emit(args.json, {"ok": False, "error": error}, f"{exc.title}: {exc.message}", error=True)
        return exc.exit_code
    except KeyboardInterrupt:
        emit(args.json, {"ok": False, "error": {"type": "Interrupted"}}, "Interrupted.", error=True)
        return 130
    finally:
        logging_setup.close()
    emit(args.json, {"ok": outcome.exit_code == 0, "result": outcome.data}, outcome.text)
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main())
