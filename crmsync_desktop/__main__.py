"""Entry point of the console (``crmsync-desktop`` and ``python -m crmsync_desktop``)."""

from __future__ import annotations

import sys


def main() -> int:
    from crmsync_desktop.app import main as run_app

    return run_app(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
