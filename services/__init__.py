"""Madina's domain services, one package per domain (``services/<domain>/``), built on ``madina/``."""
