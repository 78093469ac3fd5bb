"""The operations center: current alerts from every domain, operators' actions on them, and their history.

``domain`` holds the lifecycle, grouping and silence rules as pure functions on plain objects;
``store`` persists them with SQLAlchemy and Alembic and maps the ``madina.alerts.v1`` contracts
onto the domain. Transports (Kafka consumer, REST, gRPC, SSE) sit on top of ``store.AlertStore``.
"""
