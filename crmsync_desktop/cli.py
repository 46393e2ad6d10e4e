"""``crmsync``: the headless command line (no Qt is imported), for scripts and the dedicated sync machine.

Exit codes: 0 success; 2 bad input (usage, a bad configuration file); otherwise the ``exit_code``
of the domain error (see ``errors.py``). ``--json`` prints one JSON document on stdout, errors
included, so scripts never have to parse prose.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from crmsync_desktop import __version__
from crmsync_desktop.errors import CrmSyncError
from crmsync_desktop.logs import setup_logging
from crmsync_desktop.paths import AppPaths, resolve_paths
from crmsync_desktop.store.migrate import open_store
from crmsync_desktop.sync.profiles import ProfileService

log = logging.getLogger(__name__)

Command = Callable[[ProfileService, argparse.Namespace], Awaitable[tuple[Any, str]]]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crmsync", description="crmsync-desktop headless command line.")
    parser.add_argument("--version", action="version", version=f"crmsync-desktop {__version__}")
    parser.add_argument("--data-dir", help="keep all data, logs and settings under this folder (or set CRMSYNC_HOME)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument("-v", "--verbose", action="store_true", help="also log to stderr")
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")

    profiles = groups.add_parser("profiles", help="connection profiles")
    profiles_sub = profiles.add_subparsers(dest="action", required=True)
    profiles_sub.add_parser("list", help="list the connection profiles").set_defaults(run=_profiles_list)

    config = groups.add_parser("config", help="export or import a profile's configuration (never secrets)")
    config_sub = config.add_subparsers(dest="action", required=True)
    export = config_sub.add_parser("export", help="write a profile's configuration to a file")
    export.add_argument("profile")
    export.add_argument("file")
    export.set_defaults(run=_config_export)
    imp = config_sub.add_parser("import", help="check a configuration file, then store it (all or nothing)")
    imp.add_argument("file")
    imp.set_defaults(run=_config_import)
    return parser


async def _profiles_list(service: ProfileService, args: argparse.Namespace) -> tuple[Any, str]:
    profiles = await service.list_profiles()
    data = [
        {
            "name": p.name,
            "server_kind": p.server_kind.value,
            "server_url": p.server_url,
            "client_url": p.client_url,
            "state": p.state.value,
        }
        for p in profiles
    ]
    if not profiles:
        return data, "No connection profiles yet. Create one in the console or import a configuration file."
    width = max(len(p.name) for p in profiles)
    lines = [f"{p.name:<{width}}  {p.state.value:<12}  {p.server_url or '-'}  ->  {p.client_url or '-'}" for p in profiles]
    return data, "\n".join(lines)


async def _config_export(service: ProfileService, args: argparse.Namespace) -> tuple[Any, str]:
    path = await service.export_to_file(args.profile, args.file)
    return {"profile": args.profile, "file": str(path)}, f"Exported profile '{args.profile}' to {path}"


async def _config_import(service: ProfileService, args: argparse.Namespace) -> tuple[Any, str]:
    cfg = await service.import_from_file(args.file)
    enabled = sum(1 for e in cfg.entities if e.enabled)
    return (
        {"profile": cfg.profile.name, "entities": len(cfg.entities), "enabled": enabled},
        f"Imported profile '{cfg.profile.name}': {len(cfg.entities)} entities ({enabled} enabled). "
        "Enter its passwords and secrets in the console's Connection dialog.",
    )


async def _run(command: Command, paths: AppPaths, args: argparse.Namespace) -> tuple[Any, str]:
    db = await asyncio.to_thread(open_store, paths.database, paths.backups_dir)
    try:
        return await command(ProfileService(db), args)
    finally:
        await asyncio.to_thread(db.close)


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: str, *, error: bool = False) -> None:
    if args.json:
        print(json.dumps(payload, indent=2, sort_keys=True, default=str))
    elif text:
        print(text, file=sys.stderr if error else sys.stdout)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    paths = resolve_paths(args.data_dir).ensure()
    logging_setup = setup_logging(paths.log_file, console=args.verbose)
    try:
        data, text = asyncio.run(_run(args.run, paths, args))
    except CrmSyncError as exc:
        log.warning("%s: %s", exc.title, exc.message)
        error = {"type": type(exc).__name__, "title": exc.title, "message": exc.message}
        _emit(args, {"ok": False, "error": error}, f"{exc.title}: {exc.message}", error=True)
        return exc.exit_code
    finally:
        logging_setup.close()
    _emit(args, {"ok": True, "result": data}, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
