"""Reusable Qt pieces: the engine bridge, table models, delegates, widgets and the tray. No screens here."""
