"""The MQTT gateway process (``madina service mqtt-gateway``): transport around services.devices.domain."""
