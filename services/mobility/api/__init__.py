"""The mobility service's edge: GTFS-Realtime and AVL ingest, GTFS-Realtime feeds out, MobilityService gRPC."""
