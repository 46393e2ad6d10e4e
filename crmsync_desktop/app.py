"""Composition root of the console: builds the store, services and windows, and owns start and stop.

The only module that imports every layer. One thread, one loop: Qt and the asyncio engine share the
main thread through qasync, and everything blocking (SQLite, keyring, MSAL) runs in worker threads.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import traceback
from collections.abc import Sequence
from types import TracebackType

from crmsync_desktop import __version__
from crmsync_desktop.auth.credentials import CredentialStore
from crmsync_desktop.errors import CrmSyncError
from crmsync_desktop.logs import LoggingSetup, setup_logging
from crmsync_desktop.paths import AppPaths, resolve_paths
from crmsync_desktop.store.migrate import open_store
from crmsync_desktop.sync.profiles import ProfileService

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crmsync-desktop", description="crmsync-desktop admin console.")
    parser.add_argument("--version", action="version", version=f"crmsync-desktop {__version__}")
    parser.add_argument("--data-dir", help="keep all data, logs and settings under this folder (or set CRMSYNC_HOME)")
    parser.add_argument("--debug", action="store_true", help="log at DEBUG level")
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


def _install_excepthook() -> None:
    """Log unexpected exceptions (redacted, with traceback) instead of losing them on stderr."""
    previous = sys.excepthook

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        log.critical("Unexpected error:\n%s", "".join(traceback.format_exception(exc_type, exc, tb)))
        previous(exc_type, exc, tb)

    sys.excepthook = hook


async def amain(paths: AppPaths, logging_setup: LoggingSetup, args: argparse.Namespace) -> int:
    """Run the console until the user quits; returns the process exit code."""
    from PySide6.QtWidgets import QApplication, QMessageBox

    from crmsync_desktop.views.main_window import MainWindow

    app = QApplication.instance()
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)  # asyncio decides when to stop (clean httpx/DB shutdown)
    quit_event = asyncio.Event()

    try:
        db = await asyncio.to_thread(open_store, paths.database, paths.backups_dir)
    except CrmSyncError as exc:
        log.error("%s: %s", exc.title, exc.message)
        if args.self_test:
            print(f"self-test FAILED: {exc.title}: {exc.message}")
            return exc.exit_code
        box = QMessageBox(QMessageBox.Icon.Critical, exc.title, exc.message)
        box.finished.connect(lambda *_: quit_event.set())
        box.open()
        await quit_event.wait()
        return exc.exit_code

    credentials = CredentialStore()
    window = MainWindow(
        ProfileService(db),
        logging_setup.ring,
        data_dir=paths.data_dir,
        keyring_status=await asyncio.to_thread(keyring_status, credentials),
        on_quit=quit_event.set,
    )
    window.show()
    window.refresh()
    log.info("crmsync-desktop %s started (data folder %s)", __version__, paths.data_dir)
    try:
        if args.self_test:
            await asyncio.sleep(0.5)
            shot = window.grab()
            print(
                f"self-test ok: version {__version__}, platform {app.platformName()}, "
                f"window {shot.width()}x{shot.height()}, profiles {window.profiles_model.rowCount()}, "
                f"keyring {keyring_status(credentials)}"
            )
        else:
            await quit_event.wait()
    finally:
        window.log_model.detach()
        window.hide()
        await asyncio.to_thread(db.close)
        log.info("crmsync-desktop stopped")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    paths = resolve_paths(args.data_dir).ensure()
    logging_setup = setup_logging(paths.log_file, level=logging.DEBUG if args.debug else logging.INFO)
    _install_excepthook()

    import qasync
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("crmsync-desktop")
    app.setOrganizationName("crmsync")
    app.setApplicationVersion(__version__)
    try:
        return int(qasync.run(amain(paths, logging_setup, args)))
    finally:
        logging_setup.close()
