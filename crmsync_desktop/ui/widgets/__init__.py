"""Reusable widgets of the console: the ribbon toolbar, inline messages, the run progress panel, charts."""
