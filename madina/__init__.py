"""Madina's shared core: settings, the event bus, codecs, alert semantics, gRPC plumbing, the CLI
and the embedded Kafka-protocol broker. Domain services under ``services/`` build on it."""

__version__ = "0.1.0"
