"""Device connectivity: MQTT and LoRaWAN network servers feed every domain's ingest (issue 15)."""
