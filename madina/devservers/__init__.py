"""Private servers (PostgreSQL, Apache Kafka) that tests, benchmarks and `madina up` start on free
loopback ports, each with its own data directory, and stop afterwards. Nothing here is used by a
deployed service."""
