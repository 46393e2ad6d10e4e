"""Composition root of the console: builds the store, engine, scheduler, tray and windows; owns start and stop.

The only module that imports every layer (and, for ``--demo`` only, the emulated organizations).
One thread, one loop: Qt and the asyncio engine share the main thread through qasync, and
everything blocking (SQLite, keyring, MSAL, starting the demo emulators) runs in worker threads.
Shutdown is ordered: scheduler, running syncs, database, demo emulators.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from crmsync_desktop import __version__
from crmsync_desktop.auth.credentials import CredentialStore
from crmsync_desktop.errors import CrmSyncError
from crmsync_desktop.logs import LoggingSetup, setup_logging
from crmsync_desktop.paths import AppPaths, resolve_paths
from crmsync_desktop.store.migrate import open_store
from crmsync_desktop.sync.engine import SyncEngine
from crmsync_desktop.sync.organizations import ProfileConnectorFactory
from crmsync_desktop.sync.profiles import ProfileService
from crmsync_desktop.sync.scheduler import Scheduler

if TYPE_CHECKING:
    from crmsync_desktop.demo import DemoEnvironment
    from crmsync_desktop.ui.single_instance import SingleInstance
    from crmsync_desktop.ui.tray import TrayIcon
    from crmsync_desktop.views.main_window import MainWindow

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crmsync-desktop", description="crmsync-desktop admin console.")
    parser.add_argument("--version", action="version", version=f"crmsync-desktop {__version__}")
    parser.add_argument("--data-dir", help="keep all data, logs and settings under this folder (or set CRMSYNC_HOME)")
    parser.add_argument("--debug", action="store_true", help="log at DEBUG level")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="start emulated Dataverse and Resco Cloud organizations with sample data and a ready 'Demo' profile "
        "(kept in its own data folder, apart from your real profiles)",
    )
    parser.add_argument("--demo-records", type=int, default=2000, help="sample records in the demo (default 2000)")
    parser.add_argument("--tray", action="store_true", help="start in the system tray")
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="start, open the database, build the main window, report, and exit (checks a packaged build)",
    )
    return parser


def keyring_status(credentials: CredentialStore) -> str:
    """A short description of the keyring backend for the status bar, or what is wrong with it."""
    try:
        return credentials.check_available().rsplit(".", 2)[-2]
    except CrmSyncError as exc:
        return f"unavailable ({exc.title})"


TRAY_NOTICE_MARKER = "tray-notice-shown"


def _tray_notice_once(tray: TrayIcon, paths: AppPaths) -> None:
    """The first time the window closes to the tray, say that syncing goes on there."""
    marker = paths.config_dir / TRAY_NOTICE_MARKER
    if marker.exists():
        return
    tray.notify(
        "crmsync keeps running",
        "The window is closed but synchronization continues in the background. "
        "Use the tray icon to open the console or quit.",
    )
    try:
        marker.write_text("shown\n")
    except OSError:
        log.debug("Could not remember the tray notice", exc_info=True)


def _add_demo_menu(window: MainWindow, demo: DemoEnvironment) -> None:
    """A Demo menu that makes things happen in the emulated organizations, to watch the sync react."""
    from crmsync_desktop.ui.ops import run_op

    menu = window.menuBar().addMenu("&Demo")

    def act(label: str, fn: Callable[[], str]) -> None:
        action = menu.addAction(label)
        action.triggered.connect(
            lambda *_: run_op(window, asyncio.to_thread(fn),
                              on_success=lambda text: window.statusBar().showMessage(text, 15_000))
        )

    act("Edit an account on the client", demo.simulate_client_edit)
    act("Create a contact on the client", demo.simulate_client_create)
    menu.addSeparator()
    act("Take the server offline", lambda: demo.set_server_offline(True))
    act("Bring the server back online", lambda: demo.set_server_offline(False))


def _install_excepthook() -> None:
    """Log unexpected exceptions (redacted, with traceback) instead of losing them on stderr."""
    previous = sys.excepthook

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        log.critical("Unexpected error:\n%s", "".join(traceback.format_exception(exc_type, exc, tb)))
        previous(exc_type, exc, tb)

    sys.excepthook = hook


async def _fatal(exc: CrmSyncError, quit_event: asyncio.Event) -> int:
    from PySide6.QtWidgets import QMessageBox

    box = QMessageBox(QMessageBox.Icon.Critical, exc.title, exc.message)
    box.finished.connect(lambda *_: quit_event.set())
    box.open()
    await quit_event.wait()
    return exc.exit_code


async def amain(
    paths: AppPaths, logging_setup: LoggingSetup, args: argparse.Namespace, instance: SingleInstance
) -> int:
    """Run the console until the user quits; returns the process exit code."""
    from PySide6.QtWidgets import QApplication

    from crmsync_desktop.ui.bridge import EngineBridge
    from crmsync_desktop.ui.device_code import DeviceCodeRelay
    from crmsync_desktop.ui.queue_protocol import AllStatusesQueue
    from crmsync_desktop.ui.tray import create_tray
    from crmsync_desktop.ui.tray_controller import TrayController
    from crmsync_desktop.views.jobs_view import JobsView
    from crmsync_desktop.views.main_window import MainWindow
    from crmsync_desktop.views.transactions_view import TransactionsView

    app = QApplication.instance()
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)  # asyncio decides when to stop (clean httpx/DB shutdown)
    quit_event = asyncio.Event()

    demo = None
    if args.demo:
        from crmsync_desktop.demo import DemoEnvironment

        demo = DemoEnvironment(paths.data_dir / "demo", seed_records=args.demo_records)
        log.info("Starting the demo organizations (seeding %d records)...", args.demo_records)
        await asyncio.to_thread(demo.start)

    try:
        db = await asyncio.to_thread(open_store, paths.database, paths.backups_dir)
    except CrmSyncError as exc:
        log.error("%s: %s", exc.title, exc.message)
        if demo is not None:
            await asyncio.to_thread(demo.stop)
        if args.self_test:
            print(f"self-test FAILED: {exc.title}: {exc.message}")
            return exc.exit_code
        return await _fatal(exc, quit_event)

    credentials = demo.credentials if demo is not None else CredentialStore()
    device_codes = DeviceCodeRelay()  # MSAL's device-code prompt -> the Connection dialog (any thread)
    factory = ProfileConnectorFactory(
        credentials,
        token_cache_path=paths.token_cache,
        ca_bundle=demo.ca_bundle if demo is not None else None,
        on_device_code=device_codes,
    )
    engine = SyncEngine(db, factory, credentials=credentials, lock_dir=paths.data_dir / "locks")
    if demo is not None:
        from crmsync_desktop.demo import DEMO_PROFILE
        from crmsync_desktop.errors import ProfileNotFoundError

        try:
            existing = await engine.get_profile(DEMO_PROFILE)
        except ProfileNotFoundError:
            existing = None
        await engine.save_connection(demo.profile(existing), demo.secrets())
    scheduler = Scheduler(db, engine.sync, is_busy=engine.is_running)
    scheduler.start()
    bridge = EngineBridge(engine.bus)

    profiles = ProfileService(db)
    window = MainWindow(
        engine,
        bridge,
        profiles,
        logging_setup.ring,
        data_dir=paths.data_dir,
        keyring_status="demo (in memory)" if demo is not None else await asyncio.to_thread(keyring_status, credentials),
        on_quit=quit_event.set,
        device_codes=device_codes,
    )
    window.set_jobs_view(JobsView(engine, bridge, window.current_profile_name, logging_setup.ring, scheduler,
                                  schedule_config=profiles.load_config))
    window.set_transactions_view(
        lambda name: TransactionsView(AllStatusesQueue(engine.uploads(name)), bridge, profile=name)
    )
    unsubscribe_schedule = scheduler.subscribe(window.set_schedule_status)

    def show_window() -> None:
        window.showNormal()
        window.raise_()
        window.activateWindow()

    tray, no_tray_message = (None, "") if args.self_test else create_tray(
        on_sync_now=lambda: scheduler.sync_now(window.current_profile_name() or ""),
        on_pause=scheduler.pause,
        on_resume=scheduler.resume,
        on_open_console=show_window,
        on_quit=window.request_quit,
    )
    tray_controller = None
    unsubscribe_tray = None
    if tray is not None:
        window.set_tray_available(True)
        tray_controller = TrayController(tray, bridge, window.current_profile_name)
        unsubscribe_tray = scheduler.subscribe(tray_controller.on_schedule)
        window.hidden_to_tray.connect(lambda: _tray_notice_once(tray, paths))
    elif no_tray_message and args.tray:
        log.warning("%s", no_tray_message)
    if tray is None or not args.tray or args.self_test:
        show_window()
    if no_tray_message:
        window.statusBar().showMessage(no_tray_message, 15_000)
    instance.show_requested.connect(show_window)
    if demo is not None:
        _add_demo_menu(window, demo)
    window.refresh()
    started = await engine.start_uploads()
    if started:
        log.info("Uploading client changes for: %s", ", ".join(started))
    log.info("crmsync-desktop %s started (data folder %s)", __version__, paths.data_dir)
    try:
        if args.self_test:
            await asyncio.sleep(0.5)
            return _self_test_report(window, app.platformName(), credentials, paths)
        else:
            await quit_event.wait()
    finally:
        instance.close()
        if unsubscribe_tray is not None:
            unsubscribe_tray()
        if tray_controller is not None:
            tray_controller.stop()
        if tray is not None:
            tray.close()
        unsubscribe_schedule()
        window.log_model.detach()
        detach_jobs = getattr(window.jobs_view, "detach", None)
        if callable(detach_jobs):
            detach_jobs()
        window.hide()
        bridge.detach()
        await scheduler.aclose()
        await engine.aclose()
        factory.close()
        await asyncio.to_thread(db.close)
        if demo is not None:
            await asyncio.to_thread(demo.stop)
        log.info("crmsync-desktop stopped")
    return 0


def _self_test_report(window: MainWindow, platform: str, credentials: CredentialStore, paths: AppPaths) -> int:
    """What a packaged build must be able to do; prints one line per check and returns the exit code."""
    from crmsync_desktop.store.migrate import current_revision, head_revision
    from crmsync_desktop.ui.icons import tray_icon_path
    from crmsync_desktop.ui.tray_state import TrayIconName

    shot = window.grab()
    missing_icons = [n.value for n in TrayIconName if not tray_icon_path(n).is_file()]
    revision = current_revision(paths.database)
    checks = {
        "main window renders": not shot.isNull() and shot.width() > 0,
        f"database migrated to {head_revision()}": revision == head_revision(),
        "resources found": not missing_icons,
        f"keyring backend loads ({keyring_status(credentials)})": True,
    }
    for name, ok in checks.items():
        print(f"self-test {'ok ' if ok else 'FAILED'}: {name}")
    print(f"self-test: version {__version__}, platform {platform}, window {shot.width()}x{shot.height()}, "
          f"data {paths.data_dir}" + (f", missing icons {missing_icons}" if missing_icons else ""))
    return 0 if all(checks.values()) else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    data_dir = args.data_dir
    if args.self_test and data_dir is None:
        import tempfile

        data_dir = tempfile.mkdtemp(prefix="crmsync-selftest-")  # never the user's real profile
    if args.demo and data_dir is None:
        # The demo keeps its own folder so it never mixes with the user's real profiles.
        data_dir = str(Path(resolve_paths().data_dir) / "demo-home")
    paths = resolve_paths(data_dir).ensure()
    logging_setup = setup_logging(paths.log_file, level=logging.DEBUG if args.debug else logging.INFO)
    _install_excepthook()

    import qasync
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("crmsync-desktop")
    app.setOrganizationName("crmsync")
    app.setApplicationVersion(__version__)
    from crmsync_desktop.ui.single_instance import SingleInstance, notify_running_instance

    if not args.self_test and notify_running_instance(paths.data_dir):
        log.info("crmsync-desktop already runs for %s; brought it to the front", paths.data_dir)
        print("crmsync-desktop is already running; its window was brought to the front.")
        logging_setup.close()
        return 0
    instance = SingleInstance(paths.data_dir)
    try:
        return int(qasync.run(amain(paths, logging_setup, args, instance)))
    finally:
        logging_setup.close()
