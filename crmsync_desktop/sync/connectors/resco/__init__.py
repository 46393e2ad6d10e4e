"""The Resco Cloud connector (the client organization; optionally a server). Entry point: :class:`RescoConnector`."""

from crmsync_desktop.sync.connectors.resco.client import RescoConnector, RescoSettings

__all__ = ["RescoConnector", "RescoSettings"]
