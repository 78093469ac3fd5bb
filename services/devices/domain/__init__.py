"""The MQTT gateway's pure parts: topic schemes, uplink parsing, payload decoders, device registry.

Nothing here imports MQTT, Kafka, HTTP or a domain service; the gateway (``services.devices.gateway``)
wires these to the transports and to each domain's own ingest functions.
"""
