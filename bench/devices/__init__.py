"""MQTT device ingest through the gateway, beside HTTP ingest of the same readings (``python -m bench.devices``)."""
