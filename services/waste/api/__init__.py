"""The waste service's edge: HTTP ingest for sensors, reads and collection planning over HTTP and gRPC."""
