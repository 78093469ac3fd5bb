"""The energy service: street lighting, its control cabinets and circuits, and municipal PV sites.

``domain/`` is pure logic (no Kafka, gRPC, HTTP or protobuf); ``convert.py`` maps it to and from
the ``madina.energy.v1`` contracts; ``data/`` holds the seed network and the rule settings.
"""
