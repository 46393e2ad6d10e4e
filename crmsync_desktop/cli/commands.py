"""The CLI's commands: each takes the context, calls the engine facade, returns data and text.

They hold no logic of their own beyond argument shaping: everything goes through ``SyncEngine``
and ``ProfileService``, exactly as the console and the tray do.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from crmsync_desktop.auth.certificates import CertificateInfo, inspect_certificate
from crmsync_desktop.auth.credentials import CredentialStore, SecretKind
from crmsync_desktop.domain import (
    AuthKind,
    ConnectionProfile,
    DeletionStrategy,
    RunStatus,
    ScheduleConfig,
    ServerKind,
    TransactionStatus,
    parse_daily_at,
)
from crmsync_desktop.errors import (
    CertificateError,
    ConfigError,
    ConfigFileError,
    ProfileNotFoundError,
    SecretMissingError,
)
from crmsync_desktop.store.db import Database
from crmsync_desktop.sync.config_file import MAX_INTERVAL_MINUTES
from crmsync_desktop.sync.engine import RunResult, SyncEngine
from crmsync_desktop.sync.profiles import ProfileService
from crmsync_desktop.sync.scheduler import ScheduleKind, describe_schedule, load_schedule, store_schedule

EXIT_RUN_FAILED = 9
EXIT_DIFFERENCES = 10
PASSPHRASE_ENV = "CRMSYNC_CERTIFICATE_PASSPHRASE"
"""Where ``profiles add --certificate`` takes the certificate's passphrase from in unattended set-ups."""


@dataclass
class Context:
    args: argparse.Namespace
    db: Database
    engine: SyncEngine
    profiles: ProfileService
    credentials: CredentialStore


@dataclass
class Outcome:
    data: Any
    text: str
    exit_code: int = 0


def _run_outcome(result: RunResult, verb: str) -> Outcome:
    lines = [f"{verb}: {result.status.value} (run {result.run_id}) — {result.summary}"]
    for entity, counts in sorted(result.counts.items()):
        lines.append(f"  {entity}: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    if result.error:
        lines.append(f"  {result.error} (crmsync runs show {result.run_id})")
    return Outcome(
        {"run_id": result.run_id, "status": result.status.value, "counts": result.counts, "error": result.error},
        "\n".join(lines),
        0 if result.status is RunStatus.SUCCEEDED else EXIT_RUN_FAILED,
    )


# -- profiles and configuration -----------------------------------------------------------------


def _read_secret(prompt: str) -> str:
    """A secret from the terminal (not echoed) or, when stdin is not a terminal, its first line."""
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass(prompt)
    return sys.stdin.readline().rstrip("\r\n")


def _certificate_data(info: CertificateInfo) -> dict[str, Any]:
    return {"path": info.path, "thumbprint": info.thumbprint, "thumbprint_sha256": info.thumbprint_sha256,
            "subject": info.subject, "not_before": info.not_before, "not_after": info.not_after,
            "expired": info.expired()}


def _certificate_text(info: CertificateInfo) -> str:
    lines = [(f"Certificate {info.path}: thumbprint {info.thumbprint}, valid until {info.not_after:%Y-%m-%d %H:%M} "
              f"UTC ({info.subject or 'no subject'}). The app registration must list this thumbprint under "
              "Certificates & secrets ▸ Certificates.")]
    problem = info.validity_problem()
    if problem:
        lines.append(f"Warning: {problem}")
    return "\n".join(lines)


async def _check_certificate(ctx: Context, profile: str, path: str) -> tuple[CertificateInfo, str | None]:
    """Read the certificate file now; return it and a passphrase to store (None: nothing new to store).

    The passphrase is tried from CRMSYNC_CERTIFICATE_PASSPHRASE, else from the keyring; when the
    file needs one and neither opens it, it is asked for (or read from stdin). Never from argv.
    """
    from_env = os.environ.get(PASSPHRASE_ENV) or None
    stored: str | None = None
    if from_env is None:
        try:
            stored = await ctx.credentials.aget_secret(profile, SecretKind.SERVER_CERTIFICATE_PASSWORD)
        except SecretMissingError:
            stored = None
    candidate = from_env or stored

    async def inspect(passphrase: str | None) -> CertificateInfo:
        info = await asyncio.to_thread(inspect_certificate, path, passphrase)
        if info.encrypted and not passphrase:
            raise CertificateError(f"The private key in {path} is protected by a passphrase.",
                                   reason="passphrase_needed", path=path)
        return info

    try:
        info = await inspect(candidate)
        new = from_env if info.encrypted and from_env is not None and from_env != stored else None
        return info, new
    except CertificateError as exc:
        if exc.reason not in ("passphrase_needed", "wrong_passphrase") or from_env is not None:
            raise
        entered = _read_secret(f"Passphrase of {path}: ")
        if not entered:
            raise CertificateError(
                f"{exc.message} Give the passphrase at the prompt, on stdin, or in {PASSPHRASE_ENV}; nothing was "
                "saved.", reason=exc.reason, path=path,
            ) from None
        return await inspect(entered), entered


async def profiles_list(ctx: Context) -> Outcome:
    profiles = await ctx.profiles.list_profiles()
    data = [
        {"name": p.name, "server_kind": p.server_kind.value, "server_url": p.server_url,
         "server_auth_kind": p.server_auth_kind.value, "certificate_path": p.certificate_path,
         "client_url": p.client_url, "state": p.state.value}
        for p in profiles
    ]
    if not profiles:
        return Outcome(data, "No connection profiles yet. Create one in the console or import a configuration file.")
    width = max(len(p.name) for p in profiles)
    lines = [f"{p.name:<{width}}  {p.state.value:<12}  {p.server_url or '-'}  ->  {p.client_url or '-'}"
             for p in profiles]
    return Outcome(data, "\n".join(lines))


async def profiles_add(ctx: Context) -> Outcome:
    a = ctx.args
    try:
        existing: ConnectionProfile | None = await ctx.engine.get_profile(a.name)
    except ProfileNotFoundError:
        existing = None
    base = existing or ConnectionProfile(name=a.name)
    server_kind = ServerKind(a.server_kind)
    if a.auth:
        auth = AuthKind(a.auth)
    elif a.certificate:
        auth = AuthKind.CERTIFICATE
    else:
        auth = existing.server_auth_kind if existing is not None else AuthKind.CLIENT_SECRET
    certificate_path = ""
    secrets: dict[SecretKind, str] = {}
    info: CertificateInfo | None = None
    if a.certificate and auth is not AuthKind.CERTIFICATE:
        raise ConfigError(f"--certificate is for certificate sign-in, but --auth is {auth.value}. "
                          "Drop --auth (or use --auth certificate), or drop --certificate.")
    if auth is AuthKind.CERTIFICATE:
        if server_kind is not ServerKind.DATAVERSE:
            raise ConfigError("Certificate sign-in is for a Dynamics 365 / Dataverse server (--server-kind dataverse).")
        certificate_path = str(Path(a.certificate).expanduser().resolve()) if a.certificate else base.certificate_path
        if not certificate_path:
            raise ConfigError("Certificate sign-in needs the certificate file: add --certificate PATH (a PFX, or a PEM "
                              "file with the private key and the certificate).")
        info, passphrase = await _check_certificate(ctx, a.name, certificate_path)
        if passphrase:
            secrets[SecretKind.SERVER_CERTIFICATE_PASSWORD] = passphrase
    profile = replace(
        base, server_kind=server_kind, server_url=a.server_url, server_auth_kind=auth,
        tenant_id=a.tenant, client_id=a.client_id, server_user=a.server_user, client_url=a.client_url,
        client_user=a.client_user, verify_tls=not a.no_verify_tls, certificate_path=certificate_path,
    )
    await ctx.engine.save_connection(profile, secrets)
    data: dict[str, Any] = {"profile": a.name}
    lines = [f"Saved profile '{a.name}'."]
    if info is not None:
        data["certificate"] = _certificate_data(info)
        lines.append(_certificate_text(info))
        if secrets:
            lines.append("Its passphrase is stored in the OS keyring.")
    lines.append(f"Store its secrets with 'crmsync profiles set-secret {a.name} KIND' (read from stdin).")
    return Outcome(data, "\n".join(lines))


async def profiles_set_secret(ctx: Context) -> Outcome:
    kind = SecretKind(ctx.args.kind)
    value = _read_secret(f"{kind.value} for {ctx.args.name}: ")
    if not value:
        raise ConfigError("No secret was given on standard input; nothing was stored.")
    profile = await ctx.engine.get_profile(ctx.args.name)
    note = ""
    if kind is SecretKind.SERVER_CERTIFICATE_PASSWORD and profile.certificate_path:
        try:  # a wrong passphrase is refused here rather than at the next scheduled sync
            info = await asyncio.to_thread(inspect_certificate, profile.certificate_path, value)
        except CertificateError as exc:
            if exc.reason == "wrong_passphrase":
                raise
            note = f" The certificate file could not be checked: {exc.message}"
        else:
            note = f" It opens {info.path} (thumbprint {info.thumbprint})."
    await ctx.engine.save_connection(profile, {kind: value})
    return Outcome({"profile": profile.name, "kind": kind.value},
                   f"Stored {kind.value} for '{profile.name}' in the keyring.{note}")


async def config_export(ctx: Context) -> Outcome:
    path = await ctx.profiles.export_to_file(ctx.args.profile, ctx.args.file)
    return Outcome({"profile": ctx.args.profile, "file": str(path)},
                   f"Exported profile '{ctx.args.profile}' to {path}")


async def config_import(ctx: Context) -> Outcome:
    cfg = await ctx.profiles.import_from_file(ctx.args.file)
    enabled = sum(1 for e in cfg.entities if e.enabled)
    return Outcome(
        {"profile": cfg.profile.name, "entities": len(cfg.entities), "enabled": enabled},
        f"Imported profile '{cfg.profile.name}': {len(cfg.entities)} entities ({enabled} enabled). "
        "Enter its passwords and secrets in the console's Connection dialog.",
    )


# -- metadata -------------------------------------------------------------------------------------


async def connect(ctx: Context) -> Outcome:
    result, report = await ctx.engine.connect(ctx.args.profile, ctx.args.entity)
    outcome = _run_outcome(result, "Connect")
    if report is not None:
        outcome.text += "\n" + "\n".join(f"  {line}" for line in report.lines())
    return outcome


async def update_metadata(ctx: Context) -> Outcome:
    result, report = await ctx.engine.update_server(ctx.args.profile)
    outcome = _run_outcome(result, "Update Server")
    if report is not None:
        outcome.text += "\n" + "\n".join(f"  {line}" for line in report.lines())
    return outcome


async def disconnect(ctx: Context) -> Outcome:
    if not ctx.args.yes:
        raise ConfigError(
            f"Disconnect forgets the sync state of '{ctx.args.profile}' and removes its secrets from the keyring "
            "(the next connection starts with a full sync; queued offline transactions are kept). "
            "Add --yes to confirm."
        )
    await ctx.engine.disconnect(ctx.args.profile)
    return Outcome({"profile": ctx.args.profile}, f"Disconnected '{ctx.args.profile}'.")


# -- entities -------------------------------------------------------------------------------------


async def entities_list(ctx: Context) -> Outcome:
    statuses = await ctx.engine.entity_statuses(ctx.args.profile)
    data = []
    lines = []
    for s in statuses:
        c = s.config
        data.append({
            "entity": c.logical_name, "display_name": s.display_name, "enabled": c.enabled,
            "sync_filter": bool(c.sync_filter.strip()), "upload_filter": bool(c.upload_filter.strip()),
            "sync_deletion": c.sync_deletion, "deletion": s.resolved_deletion.value,
            "change_detection": s.change_detection, "records": s.records_held,
            "last_sync_at": s.last_sync_at, "waiting_retries": s.waiting_retries,
        })
        if c.enabled:
            lines.append(f"[x] {c.logical_name:<28} {s.records_held:>9} records  {s.change_detection:<16} "
                         f"deletions: {s.resolved_deletion.value}" + ("  filtered" if c.sync_filter.strip() else ""))
    disabled = sum(1 for s in statuses if not s.config.enabled)
    lines.append(f"({disabled} more entities are not enabled; --json lists them all)")
    return Outcome(data, "\n".join(lines))


async def _update_entities(ctx: Context, names: list[str], **changes: Any) -> Outcome:
    statuses = {s.config.logical_name: s.config for s in await ctx.engine.entity_statuses(ctx.args.profile)}
    unknown = [n for n in names if n not in statuses]
    if unknown:
        raise ConfigError(f"Unknown entities: {', '.join(unknown)}. Run 'crmsync entities list {ctx.args.profile}'.")
    configs = [replace(statuses[n], **changes) for n in names]
    resync = await ctx.engine.save_entity_configs(ctx.args.profile, configs)
    text = f"Saved {len(configs)} entity setting(s)."
    if resync:
        text += f" The next sync reads these completely: {', '.join(resync)}."
    return Outcome({"saved": names, "full_sync_next": resync}, text)


async def entities_enable(ctx: Context) -> Outcome:
    return await _update_entities(ctx, ctx.args.entities, enabled=ctx.args.enable)


async def entities_set_filter(ctx: Context) -> Outcome:
    if ctx.args.file:
        try:
            xml = Path(ctx.args.file).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigFileError(f"Cannot read {ctx.args.file}: {exc.strerror or exc}") from exc
    else:
        xml = ctx.args.xml
    field = "upload_filter" if ctx.args.upload else "sync_filter"
    return await _update_entities(ctx, [ctx.args.entity], **{field: xml})


async def entities_set_deletion(ctx: Context) -> Outcome:
    strategy = {"auto": DeletionStrategy.OFF, "sweep": DeletionStrategy.SWEEP, "tracking": DeletionStrategy.TRACKING,
                "change_tracking": DeletionStrategy.CHANGE_TRACKING}[ctx.args.strategy]
    return await _update_entities(ctx, [ctx.args.entity], sync_deletion=ctx.args.state == "on",
                                  deletion_strategy=strategy)


# -- data ---------------------------------------------------------------------------------------


async def sync(ctx: Context) -> Outcome:
    if ctx.args.dry_run:
        result, examples = await ctx.engine.dry_run(ctx.args.profile, full=ctx.args.full, entities=ctx.args.entity)
        outcome = _run_outcome(result, "Dry run (nothing was written)")
        for (entity, action), ids in sorted(examples.items()):
            outcome.text += f"\n  e.g. {action} {entity}: {', '.join(ids)}"
        outcome.data["examples"] = {f"{e}:{a}": ids for (e, a), ids in examples.items()}
        return outcome
    result = await ctx.engine.sync(ctx.args.profile, full=ctx.args.full, entities=ctx.args.entity)
    return _run_outcome(result, "Sync All" if ctx.args.full else "Sync")


async def verify(ctx: Context) -> Outcome:
    result, report = await ctx.engine.verify(ctx.args.profile, ctx.args.entity)
    if report is None:
        return _run_outcome(result, "Verify")
    lines = ["Verify: " + ("both organizations are in sync" if report.in_sync
                           else f"{report.differences} difference(s)")]
    for e in report.entities:
        mark = "ok " if e.in_sync else "DIFF"
        lines.append(f"  {mark} {e.entity:<28} server {e.server_count:>8}  client {e.client_count:>8}  "
                     f"missing {e.missing_on_client}  extra {e.extra_on_client}  different {e.different}")
        lines.extend(f"       {x}" for x in e.examples)
    data = {"in_sync": report.in_sync, "run_id": result.run_id, "entities": [asdict(e) for e in report.entities]}
    return Outcome(data, "\n".join(lines), 0 if report.in_sync else EXIT_DIFFERENCES)


async def users(ctx: Context) -> Outcome:
    """The owner mapping: each server user and the client user its records are owned by."""
    matches = await ctx.engine.user_mapping(ctx.args.profile)
    data = [m.as_dict() for m in matches]
    if not matches:
        return Outcome(data, "No users to map (Connect first: the client organization needs the user entity).")
    mapped = sum(1 for m in matches if m.status.value == "mapped-by-email")
    lines = [f"{len(matches)} server user(s), {mapped} mapped by email to the client's own users"]
    width = max(len(m.server_email or "-") for m in matches)
    for m in matches:
        lines.append(f"  {m.status.value:<16} {m.server_email or '-':<{width}}  {m.server_id}  ->  {m.client_id or '-'}")
        if m.candidates:
            lines.append(f"  {'':<16} candidates: {', '.join(m.candidates)}")
        if m.advice:
            lines.append(f"  {'':<16} {m.advice}")
    return Outcome(data, "\n".join(lines))


async def status(ctx: Context) -> Outcome:
    profile = await ctx.engine.get_profile(ctx.args.profile)
    statuses = await ctx.engine.entity_statuses(profile.name)
    runs = await ctx.engine.list_runs(profile.name, limit=5)
    enabled = [s for s in statuses if s.config.enabled]
    lines = [f"{profile.name}: {profile.state.value}; server {profile.server_url} -> client {profile.client_url}",
             f"{len(enabled)} of {len(statuses)} entities enabled, "
             f"{sum(s.records_held for s in enabled)} records held, "
             f"{sum(s.waiting_retries for s in enabled)} waiting for a retry"]
    for run in runs:
        lines.append(f"  run {run.id}: {run.trigger.value} {run.status.value} at {run.started_at:%Y-%m-%d %H:%M:%S}"
                     + (f" — {run.error}" if run.error else ""))
    data = {"profile": profile.name, "state": profile.state.value, "entities_enabled": len(enabled),
            "records": sum(s.records_held for s in enabled),
            "runs": [{"id": r.id, "status": r.status.value, "started_at": r.started_at} for r in runs]}
    return Outcome(data, "\n".join(lines))


async def runs_list(ctx: Context) -> Outcome:
    runs = await ctx.engine.list_runs(ctx.args.profile, limit=ctx.args.limit)
    data = [{"id": r.id, "profile": r.profile, "trigger": r.trigger.value, "status": r.status.value,
             "started_at": r.started_at, "ended_at": r.ended_at, "counts": r.counts, "error": r.error} for r in runs]
    lines = [f"{r.id:>6}  {r.profile:<16} {r.trigger.value:<14} {r.status.value:<10} {r.started_at:%Y-%m-%d %H:%M:%S}"
             for r in runs] or ["No runs yet."]
    return Outcome(data, "\n".join(lines))


async def runs_show(ctx: Context) -> Outcome:
    lines = await ctx.engine.run_log(ctx.args.run_id)
    data = [{"at": line.at, "level": line.level, "entity": line.entity, "message": line.message} for line in lines]
    text = "\n".join(f"{line.at:%H:%M:%S} {line.level:<7} {line.entity + ': ' if line.entity else ''}{line.message}"
                     for line in lines) or f"Run {ctx.args.run_id} has no log lines."
    return Outcome(data, text)


# -- schedule ----------------------------------------------------------------------------------


def _local(at: datetime) -> str:
    return f"{at.astimezone():%Y-%m-%d %H:%M}"


async def schedule(ctx: Context) -> Outcome:
    """Show or change the periodic download: ``--every MINUTES``, ``--daily HH:MM`` or ``--off``."""
    a = ctx.args
    name = a.profile
    config, _ = await load_schedule(ctx.db, name)
    if a.every is not None:
        if not 1 <= a.every <= MAX_INTERVAL_MINUTES:
            raise ConfigError(f"--every {a.every}: use 1 to {MAX_INTERVAL_MINUTES} minutes (one week).")
        new = ScheduleConfig(enabled=True, interval_minutes=a.every)
    elif a.daily is not None:
        try:
            daily = parse_daily_at(a.daily)
        except ValueError as exc:
            raise ConfigError(f"--daily: {exc}.") from None
        new = ScheduleConfig(enabled=True, interval_minutes=config.interval_minutes, daily_at=daily)
    elif a.off:
        new = replace(config, enabled=False)
    else:
        new = config
    changed = new != config
    if changed:
        await store_schedule(ctx.db, name, new)
    config, status = await load_schedule(ctx.db, name)
    lines = [f"Schedule of '{name}': {describe_schedule(config)}."]
    if status.kind is ScheduleKind.DISABLED and config.enabled:
        lines.append(f"Not scheduled until the profile is connected ('crmsync connect {name}').")
    elif status.kind is ScheduleKind.PAUSED:
        lines.append("Paused: scheduled runs wait until the schedule is resumed in the console.")
    elif status.kind is ScheduleKind.BACKING_OFF and status.next_run_at is not None:
        lines.append(f"{status.consecutive_failures} failed run(s) in a row; "
                     f"next try at {_local(status.next_run_at)}.")
    elif status.next_run_at is not None:
        lines.append(f"Next run at {_local(status.next_run_at)}.")
    if changed:
        lines.append("Scheduled runs happen while the console or 'crmsync run' is running; "
                     "a running one picks this change up within a minute.")
    data = {
        "profile": name, "changed": changed, "enabled": config.enabled,
        "mode": "daily" if config.daily_at is not None else "interval",
        "interval_minutes": config.interval_minutes, "daily_at": config.daily_at, "state": status.kind.value,
        "next_run_at": status.next_run_at, "last_success_at": status.last_success_at,
    }
    return Outcome(data, "\n".join(lines))


# -- offline transactions ----------------------------------------------------------------------

_STATUS = {"pending": TransactionStatus.PENDING, "processed": TransactionStatus.PROCESSED,
           "error": TransactionStatus.ERROR, "archived": TransactionStatus.ARCHIVED, "all": None}


async def transactions_list(ctx: Context) -> Outcome:
    queue = ctx.engine.uploads(ctx.args.profile)
    status = _STATUS[ctx.args.status]
    page = await queue.list(status, limit=ctx.args.limit)
    counts = await queue.counts()
    data = {
        "counts": {k.value: v for k, v in counts.items()},
        "items": [
            {"id": t.id, "created_at": t.created_at, "entity": t.entity, "record_id": t.record_id,
             "operation": t.operation.value, "status": t.status.value, "attempts": t.attempts,
             "last_error": t.last_error, "processed_at": t.processed_at}
            for t in page.items
        ],
    }
    lines = ["  ".join(f"{k.value}: {v}" for k, v in counts.items())]
    for t in page.items:
        lines.append(f"{t.id:>8}  {t.created_at:%Y-%m-%d %H:%M:%S}  {t.status.value:<9} {t.operation.value:<12} "
                     f"{t.entity}/{t.record_id or '-'}" + (f"  — {t.last_error}" if t.last_error else ""))
    return Outcome(data, "\n".join(lines))


async def transactions_set(ctx: Context) -> Outcome:
    queue = ctx.engine.uploads(ctx.args.profile)
    if ctx.args.to == "retry":
        changed = await queue.set_pending(ctx.args.ids)
        text = f"{changed} transaction(s) set to Pending; they are sent on the next delivery."
    else:
        changed = await queue.archive(ctx.args.ids)
        text = f"{changed} transaction(s) archived; they will not be sent."
    if changed < len(ctx.args.ids):
        text += f" {len(ctx.args.ids) - changed} were not in a status that allows it."
    return Outcome({"changed": changed}, text)


async def transactions_retry_errors(ctx: Context) -> Outcome:
    changed = await ctx.engine.uploads(ctx.args.profile).retry_errors()
    return Outcome({"changed": changed}, f"{changed} transaction(s) in Error set back to Pending.")


# -- service mode ------------------------------------------------------------------------------


async def run_service(ctx: Context) -> Outcome:
    """Upload loops of every connected profile plus the periodic download, until SIGINT/SIGTERM."""
    import asyncio
    import signal

    from crmsync_desktop.sync.scheduler import Scheduler

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # Windows: Ctrl+C still raises KeyboardInterrupt
            pass
    scheduler = Scheduler(ctx.db, ctx.engine.sync, is_busy=ctx.engine.is_running)
    started = await ctx.engine.start_uploads()
    if not started:
        await ctx.engine.aclose()
        raise ConfigError("No connected profile to run. Connect a profile first ('crmsync connect PROFILE').")
    scheduler.start()
    print(f"crmsync service running for: {', '.join(started)} (Ctrl+C to stop)", file=sys.stderr)
    try:
        await stop.wait()
    finally:
        await scheduler.aclose()
        await ctx.engine.aclose()
    return Outcome({"profiles": started}, "Stopped.")
