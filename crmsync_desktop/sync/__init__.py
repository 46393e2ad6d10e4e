"""The sync engine: connectors to both organizations, mapping, scheduling. Qt-free by contract."""
