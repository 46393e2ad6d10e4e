"""Connectors: one async client per product behind the :class:`~.base.Connector` interface.

``types`` holds the plain values that cross the seam; ``http`` the shared transport, retry and
error translation; ``dataverse`` and ``resco`` the two products.
"""
