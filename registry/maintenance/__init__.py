"""Maintenance: the registry's read-only mode (``readonly``), its switch's table (``models``)."""
