"""The mobility stream processor: one route's state per table value, run by madina.streams.entities."""
