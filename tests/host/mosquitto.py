"""A real Mosquitto broker for host tests, on a free loopback port, with its own config.

Debian's ``mosquitto`` package (``/usr/sbin/mosquitto``, ``mosquitto_passwd``). Missing: the
test is skipped with the reason - or fails under ``CI=true``, where CI installs it.

Usage (the broker is stopped when the ``with`` block ends, whatever happens)::

    with mosquitto_broker(tmp_path, users={"meter": "secret"}) as broker:
        # tls=make_test_cert(tmp_path) for a TLS listener
        broker.host, broker.port
        broker.stop()      # like a broker crash/restart: connections drop
        broker.start()     # same port, same config
        broker.restart()
"""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

from _support import require, which
from servers import LOOPBACK, ServerProcess, free_port


def find_mosquitto() -> str:
    """Path of the broker binary; skips (or fails under CI) the calling test when missing."""
    path = which("mosquitto")
    require(path is not None, "mosquitto is not installed (apt-get install mosquitto)")
    return path


class Broker(ServerProcess):
    """One mosquitto process at a time on a fixed port; stop/start keep port and config."""

    name = "mosquitto"

    def __init__(
        self,
        directory: Path,
        users: dict[str, str] | None = None,
        port: int = 0,
        tls: tuple[Path, Path] | None = None,
    ):
        self.binary = find_mosquitto()
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host = LOOPBACK
        self.port = port or free_port()
        self.users = dict(users or {})
        self.tls = tls  # (certfile, keyfile) for a TLS listener, see make_test_cert()
        self.log_path = self.dir / "mosquitto.log"
        self.conf_path = self.dir / "mosquitto.conf"
        self._write_config()

    def _write_config(self) -> None:
        lines = [
            "listener %d %s" % (self.port, self.host),
            *(["certfile %s" % self.tls[0], "keyfile %s" % self.tls[1]] if self.tls else []),
            "persistence false",  # a restart forgets retained messages, like a fresh broker
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to 'mosquitto', which cannot read tmp_path
        if self.users:
            pwfile = self.dir / "passwords"
            pwfile.write_text("")
            tool = which("mosquitto_passwd")
            require(tool is not None, "mosquitto_passwd is not installed")
            for user, password in self.users.items():
                subprocess.run(
                    [tool, "-b", str(pwfile), user, password],
                    check=True,
                    capture_output=True,
                    timeout=10,
                )
            os.chmod(pwfile, 0o600)
            lines += ["allow_anonymous false", "password_file %s" % pwfile]
        else:
            lines.append("allow_anonymous true")
        self.conf_path.write_text("\n".join(lines) + "\n")

    def command(self) -> list[str]:
        return [self.binary, "-c", str(self.conf_path)]


def make_test_cert(directory: Path, host: str = LOOPBACK) -> tuple[Path, Path]:
    """A self-signed certificate for ``host`` (IP SAN), valid one day: (certfile, keyfile).

    The certificate is its own CA: clients trust it with ``ssl.create_default_context(cafile=)``.
    """
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    certfile, keyfile = directory / "broker.crt", directory / "broker.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(keyfile, 0o600)
    return certfile, keyfile


@contextmanager
def mosquitto_broker(
    directory: Path,
    users: dict[str, str] | None = None,
    tls: tuple[Path, Path] | None = None,
):
    """A started :class:`Broker`, stopped at the end of the block."""
    broker = Broker(directory, users, tls=tls)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
