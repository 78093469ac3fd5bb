"""Pure mobility logic (GTFS, GTFS-Realtime delays, AVL matching, alert rules); no Kafka, gRPC or HTTP."""
