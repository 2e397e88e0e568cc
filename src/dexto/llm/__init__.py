"""Providers, the curated registry, namespace mapping, the routing decision and the catalog."""
