"""Entry point of the console (``crmsync-desktop`` and ``python -m crmsync_desktop``)."""

from __future__ import annotations

import sys


def main() -> int:
    import gc

    from crmsync_desktop.app import main as run_app

    # Everything imported so far (Qt, SQLAlchemy, the engine) lives as long as the process: keep
    # it out of the collector's full passes, which otherwise stall the event loop for ~90 ms
    # during a big sync (bench: "longest event-loop stall").
    gc.freeze()
    return run_app(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
