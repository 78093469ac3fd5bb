"""Environment service: air, water and noise stations, their alerts and the air quality index.

``domain/`` is the pure core (windows, AQI, threshold profiles, the station evaluator) and
imports no transport; ``data/`` holds the built-in threshold profiles and station seed. The
transport side (HTTP/gRPC ingest, the faust stream processor) builds on both.
"""
