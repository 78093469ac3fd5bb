"""Settings of the operations service. Its own variables are MADINA_OPERATIONS_*; the shared ones
(MADINA_KAFKA_BOOTSTRAP, MADINA_CREDENTIALS_FILE, MADINA_DATABASE_URL, TLS, ...) come from
ServiceSettings. Compose mounts the PostgreSQL password as a file: MADINA_DATABASE_PASSWORD_FILE
names it and its content is put into the database URL, so the URL itself carries no secret."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from sqlalchemy.engine import make_url

from madina.settings import MadinaSettings, ServiceSettings


class OperationsStoreSettings(MadinaSettings):
    """What reaching the store needs (also used by the rebuild command, which serves nothing)."""

    database_url: str = Field(
        default="", description="SQLAlchemy URL of the operations store; unset: SQLite in MADINA_DATA_DIR."
    )
    database_password_file: Path | None = Field(
        default=None, description="File holding the database password, injected into MADINA_DATABASE_URL."
    )

    @model_validator(mode="after")
    def _inject_database_password(self) -> OperationsStoreSettings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'madina.db'}"
        if self.database_password_file is not None:
            if not self.database_password_file.is_file():
                raise ValueError(f"file {self.database_password_file} does not exist")
            password = self.database_password_file.read_text(encoding="utf-8").strip()
            url = make_url(self.database_url).set(password=password)
            self.database_url = url.render_as_string(hide_password=False)
        return self


class OperationsSettings(ServiceSettings, OperationsStoreSettings):
    operations_http_port: int = Field(default=8080, ge=0, le=65535)
    operations_grpc_port: int = Field(default=50055, ge=0, le=65535)
    operations_consumer_group: str = Field(default="madina-operations")
    operations_action_timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="How long a command waits for its action to be applied."
    )
    operations_sse_heartbeat_s: float = Field(default=15.0, gt=0, le=300)
    operations_sse_queue_size: int = Field(
        default=1000, ge=1, le=100_000,
        description="Changes buffered per SSE or gRPC watcher; one that falls further behind is dropped.",
    )
