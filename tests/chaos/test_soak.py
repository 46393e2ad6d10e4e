"""The chaos soak (bench/chaos.py) for about a minute: nothing is lost while faults and kill -9 go on.

Marked ``chaos``: excluded from the default run (CI runs ``-m "not chaos"``); run it with
``pytest -m chaos tests/chaos``. The full soak is ``python -m bench.chaos --minutes 10``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench import chaos

pytestmark = pytest.mark.chaos


def test_one_minute_soak_loses_nothing(tmp_path: Path) -> None:
    minutes = float(os.environ.get("CRMSYNC_CHAOS_MINUTES", "1"))
    seed = int(os.environ.get("CRMSYNC_CHAOS_SEED", "7"))
    result = chaos.run(minutes, seed, records=600, work=tmp_path / "soak", drain_timeout=300)
    print(chaos.report(result))
    assert result["injected"].get("sync process killed (SIGKILL)", 0) >= 3
    assert result["passed"], chaos.report(result)
