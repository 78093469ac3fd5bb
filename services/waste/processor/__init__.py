"""The waste stream processor (faust, through madina.streams.entities)."""
