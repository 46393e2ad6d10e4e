"""Icons shipped as SVG files under ``crmsync_desktop/resources`` (package data, also in the bundle).

Tray icons are coloured discs (a triangle for "attention") with a white rim and a high-contrast
glyph, so they read on light and dark panels alike without a per-theme variant.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from PySide6.QtGui import QIcon

from crmsync_desktop.ui.tray_state import TrayIconName

__all__ = ["RESOURCES_DIR", "TRAY_ICON_DIR", "tray_icon", "tray_icon_path"]

RESOURCES_DIR = Path(__file__).resolve().parent.parent / "resources"
TRAY_ICON_DIR = RESOURCES_DIR / "tray"


def tray_icon_path(name: TrayIconName) -> Path:
    """The SVG file of the tray icon ``name``."""
    return TRAY_ICON_DIR / f"{TrayIconName(name).value}.svg"


@cache
def tray_icon(name: TrayIconName) -> QIcon:
    """The tray icon ``name`` (loaded once; needs a QGuiApplication)."""
    path = tray_icon_path(name)
    if not path.is_file():
        raise FileNotFoundError(f"tray icon missing from the package: {path}")
    return QIcon(str(path))
