"""The energy service's API: HTTP ingest and control, EnergyService gRPC."""
