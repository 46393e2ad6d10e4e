"""The Dataverse Web API connector (the server organization). Entry point: :class:`DataverseConnector`."""

from crmsync_desktop.sync.connectors.dataverse.client import DataverseConnector, DataverseSettings

__all__ = ["DataverseConnector", "DataverseSettings"]
