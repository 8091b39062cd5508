"""A throw-away certificate authority and a private `redis-server` speaking only TLS, for the security tests.

ca = make_ca(tmp_path)                  # ca.pem, server.pem, server-key.pem in tmp_path
with TLSRedisServer(ca) as server:      # --port 0 --tls-port <free port>
    layer = RedisChannelLayer(hosts=[server.url], connection_kwargs={"ssl_ca_certs": ca.ca_file})
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.redis_server import RedisServer


@dataclass
class CertificateAuthority:
    ca_file: str
    cert_file: str
    key_file: str


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(directory: Path) -> CertificateAuthority:
    """A self-signed CA and a server certificate it signed for 127.0.0.1 and localhost (valid for a day)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("channels test CA"))
        .issuer_name(_name("channels test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    paths = CertificateAuthority(
        str(directory / "ca.pem"), str(directory / "server.pem"), str(directory / "server-key.pem")
    )
    Path(paths.ca_file).write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    Path(paths.cert_file).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    Path(paths.key_file).write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


class TLSRedisServer(RedisServer):
    """A private `redis-server` with no plain-text port: TLS only, on `port`, with `ca`'s server certificate."""

    def __init__(self, ca: CertificateAuthority, extra_args: list[str] | None = None) -> None:
        super().__init__(
            extra_args=[
                "--tls-port",
                "0",  # replaced below, once the port is known
                "--port",
                "0",
                "--tls-cert-file",
                ca.cert_file,
                "--tls-key-file",
                ca.key_file,
                "--tls-ca-cert-file",
                ca.ca_file,
                "--tls-auth-clients",
                "no",
                *(extra_args or []),
            ]
        )
        self.extra_args[1] = str(self.port)
        self.ca = ca

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca.ca_file)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as raw:
                with self.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1") as sock:
                    sock.sendall(b"PING\r\n")
                    return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def plain_text_refused(self) -> bool:
        """True if a plain-text PING on the TLS port gets no PONG (the server really speaks only TLS)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                sock.sendall(b"PING\r\n")
                return not sock.recv(16).startswith(b"+PONG")
        except OSError:
            return True

    def client(self, **kwargs) -> redis.Redis:
        kwargs.setdefault("socket_timeout", 5)
        return redis.Redis(host="127.0.0.1", port=self.port, ssl=True, ssl_ca_certs=self.ca.ca_file, **kwargs)
