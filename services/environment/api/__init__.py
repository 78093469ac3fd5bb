"""The environment service's edge: HTTP ingest for devices, gRPC for partners, live station status."""
