"""A private Mosquitto MQTT broker for tests, benchmarks and `madina up`.

    with MosquittoServer.start(tmp_dir) as server:
        ...  # server.port accepts MQTT 3.1.1 and 5 on 127.0.0.1

Debian's ``mosquitto`` package run by hand with a config of our own in ``directory``: one
listener on a free loopback port, persistence in ``directory`` (so a persistent session and its
queued QoS 1 messages survive :meth:`MosquittoServer.restart`, as on a real broker), and, when
``users`` is given, a password file (written with ``mosquitto_passwd``) and an ACL that gives
each user only its topic patterns. It never touches the system's /etc/mosquitto.
With ``tls`` (a CA, a certificate it signed and that certificate's key) the listener speaks
MQTT over TLS only, as a deployment's broker for the gateway does.
``make system-deps`` installs the package; without it :class:`MosquittoUnavailable` says so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from madina.devservers.ports import free_port

_START_ATTEMPTS = 3


class MosquittoUnavailable(RuntimeError):
    """Mosquitto is not installed or would not start; the message says why."""


@dataclass(frozen=True)
class MqttUser:
    """A user of the private broker and the topic patterns it may use (``readwrite`` in the ACL)."""

    username: str
    password: str
    topics: Sequence[str] = ("#",)


def find_binary() -> str:
    """Debian installs the broker in /usr/sbin, which is not on every PATH."""
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise MosquittoUnavailable("mosquitto is not installed; `make system-deps` installs Debian's mosquitto")


def ensure_installed() -> str:
    """The broker's path, installing Debian's package first when missing and we are root (`madina up`)."""
    try:
        return find_binary()
    except MosquittoUnavailable:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-qq", "mosquitto"], env=env, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return find_binary()


@dataclass(frozen=True)
class MosquittoTls:
    """PEM files of the listener's TLS: the CA clients may check it against, its certificate and key."""

    ca_file: Path
    cert_file: Path
    key_file: Path


@dataclass
class MosquittoServer:
    """One running broker; :meth:`stop` ends it, :meth:`restart` keeps its port and persisted state."""

    directory: Path
    port: int
    users: Sequence[MqttUser] = ()
    tls: MosquittoTls | None = None
    # Unacknowledged QoS 1 messages it sends a client at once; 0: no limit (Mosquitto's default is 20).
    max_inflight_messages: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @classmethod
    def start(cls, directory: Path, users: Sequence[MqttUser] = (), port: int | None = None,
              timeout_s: float = 10.0, tls: MosquittoTls | None = None,
              max_inflight_messages: int = 0) -> MosquittoServer:
        binary = ensure_installed()
        directory.mkdir(parents=True, exist_ok=True)
        failure = ""
        for _ in range(_START_ATTEMPTS if port is None else 1):
            server = cls(directory, port or free_port(), users, tls, max_inflight_messages)
            try:
                server._launch(binary, timeout_s)
                return server
            except MosquittoUnavailable as error:  # most often: another process took the free port first
                failure = str(error)
        raise MosquittoUnavailable(failure)

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "mosquitto.log"

    def _write_config(self) -> Path:
        data = self.directory / "data"
        data.mkdir(exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            *([f"cafile {self.tls.ca_file}", f"certfile {self.tls.cert_file}", f"keyfile {self.tls.key_file}"]
              if self.tls else []),
            "persistence true",
            f"persistence_location {data}/",
            "autosave_interval 1",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "connection_messages true",
            # A gateway that fell behind must not lose readings: queue deeply for persistent sessions.
            "max_queued_messages 1000000",
            f"max_inflight_messages {self.max_inflight_messages}",
        ]
        if os.geteuid() == 0:
            # Run as root, mosquitto drops to the `mosquitto` user, which cannot read our private
            # directory; the broker is ours and loopback-only, so it keeps our user.
            lines.append("user root")
        if self.users:
            passwords = self.directory / "passwords"
            acl = self.directory / "acl"
            passwords.write_text("".join(f"{u.username}:{u.password}\n" for u in self.users))
            passwords.chmod(0o600)
            # Hashes the plain-text file in place (mosquitto refuses plain-text passwords).
            subprocess.run([_passwd_binary(), "-U", str(passwords)], check=True, capture_output=True)
            acl.write_text("".join(
                f"user {u.username}\n" + "".join(f"topic readwrite {t}\n" for t in u.topics) + "\n"
                for u in self.users))
            acl.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {passwords}", f"acl_file {acl}"]
        else:
            lines.append("allow_anonymous true")
        config = self.directory / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        return config

    def _launch(self, binary: str, timeout_s: float) -> None:
        config = self._write_config()
        with (self.directory / "stdout.log").open("ab") as out:
            self.process = subprocess.Popen([binary, "-c", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                            cwd=self.directory, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise MosquittoUnavailable(f"mosquitto exited with {self.process.returncode}: {self._tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise MosquittoUnavailable(f"mosquitto did not listen on {self.port} within {timeout_s} s: {self._tail()}")

    def _tail(self, lines: int = 5) -> str:
        texts = []
        for path in (self.log_path, self.directory / "stdout.log"):
            with contextlib.suppress(OSError):
                texts += path.read_text(errors="replace").splitlines()[-lines:]
        return " | ".join(texts)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM: mosquitto saves its persistence file on the way out."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self, down_s: float = 0.0, timeout_s: float = 10.0) -> None:
        """Stop, stay down ``down_s``, start again on the same port with the same persisted state."""
        self.stop()
        time.sleep(down_s)
        self._launch(find_binary(), timeout_s)

    def __enter__(self) -> MosquittoServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


def _passwd_binary() -> str:
    for candidate in (shutil.which("mosquitto_passwd"), "/usr/bin/mosquitto_passwd"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise MosquittoUnavailable("mosquitto_passwd is missing (Debian's mosquitto package ships it)")

