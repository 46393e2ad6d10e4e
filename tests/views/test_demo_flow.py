"""The newcomer's demo, end to end through the real composition root (offscreen).

``crmsync-desktop --demo`` starts the emulated organizations; then, as a user would: Connect,
enable Account, Save, Sync All, edit an account on the client (Demo menu), and see it become a
Processed offline transaction that reached the server. Then Quit.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from PySide6.QtWidgets import QApplication

from crmsync_desktop.app import amain, build_parser
from crmsync_desktop.domain import TransactionStatus
from crmsync_desktop.logs import setup_logging
from crmsync_desktop.paths import resolve_paths
from crmsync_desktop.ui.single_instance import SingleInstance
from crmsync_desktop.views.main_window import MainWindow


async def _until(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def test_demo_connect_sync_and_client_edit_becomes_processed(qtbot, qloop, qapp, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    args = build_parser().parse_args(["--demo", "--demo-records", "150", "--data-dir", str(tmp_path / "home")])
    paths = resolve_paths(args.data_dir).ensure()
    logging_setup = setup_logging(paths.log_file)
    instance = SingleInstance(paths.data_dir)
    qapp.setQuitOnLastWindowClosed(False)

    def window() -> MainWindow | None:
        return next((w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()), None)

    async def user() -> dict[str, object]:
        await _until(lambda: window() is not None and window().current_profile_name() == "Demo")
        w = window()
        assert w is not None
        engine = w._engine  # the same facade every view uses

        w.open_connection_dialog()
        dialog = w.connection_dialog
        assert dialog is not None
        await _until(lambda: dialog.name_edit.text() == "Demo" and bool(dialog.stored))  # loaded, secrets known
        connecting = dialog.connect_organizations()
        assert connecting is not None
        await connecting
        assert (await engine.get_profile("Demo")).state.value == "connected"
        dialog.close()

        await _until(lambda: w.entities.model.rowCount() > 0)
        row = w.entities.model.row_of("account")
        w.entities.model.set_enabled([row], True)
        saved = w.entities.save()
        assert saved is not None
        await saved

        await _until(w.sync_all_action.isEnabled)  # the window learnt that 'Demo' is connected
        syncing = w.sync_all()
        assert syncing is not None
        await syncing
        result = await engine.verify("Demo")
        in_sync = result[1] is not None and result[1].in_sync

        demo_menu = next(a.menu() for a in w.menuBar().actions() if a.text() == "&Demo")
        edit = next(a for a in demo_menu.actions() if a.text().startswith("Edit an account"))
        edit.trigger()
        queue = engine.uploads("Demo")
        processed: dict[TransactionStatus, int] = {}

        async def poll() -> None:
            while True:
                processed.update(await queue.counts())
                if processed.get(TransactionStatus.PROCESSED):
                    return
                await asyncio.sleep(0.2)

        await asyncio.wait_for(poll(), timeout=60)
        page = await queue.list(TransactionStatus.PROCESSED)
        sent = [(t.entity, t.operation.value, list(t.payload.get("changed", []))) for t in page.items]
        w.request_quit()
        return {"in_sync": in_sync, "processed": processed.get(TransactionStatus.PROCESSED), "sent": sent}

    async def scenario() -> tuple[int, dict[str, object]]:
        driver = asyncio.ensure_future(user())
        code = await amain(paths, logging_setup, args, instance)
        return code, await driver

    try:
        code, seen = qloop.run_until_complete(asyncio.wait_for(scenario(), timeout=120))
    finally:
        logging_setup.close()
        instance.close()
    assert code == 0
    # One update with only the field the user changed (the download's baseline tells them apart).
    assert seen == {"in_sync": True, "processed": 1, "sent": [("account", "update", ["name"])]}
