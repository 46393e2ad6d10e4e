"""A second launch finds the first one and asks it to show itself."""

from __future__ import annotations

from pathlib import Path

from crmsync_desktop.ui.single_instance import SingleInstance, notify_running_instance


def test_second_launch_reaches_the_first(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert not notify_running_instance(tmp_path)  # nobody there yet
    first = SingleInstance(tmp_path)
    try:
        with qtbot.waitSignal(first.show_requested, timeout=5000):
            assert notify_running_instance(tmp_path)
        assert not notify_running_instance(tmp_path / "other")  # another data folder is another console
    finally:
        first.close()
    assert not notify_running_instance(tmp_path)
