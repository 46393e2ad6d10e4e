"""``python -m crmsync_desktop.cli``: the same as the ``crmsync`` command."""

import sys

from crmsync_desktop.cli import main

sys.exit(main())
