"""The console's screens. They compose pieces from ``ui`` and talk to the engine only through the bridge."""
