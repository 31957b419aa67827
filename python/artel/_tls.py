"""How the client trusts the coordinator, as the C++ client does (src/tls).

Exactly one way must be chosen:

* a pin: the lowercase hex SHA-256 of the coordinator certificate's DER, from
  ``tls_fingerprint`` / ARTEL_TLS_FINGERPRINT or from a token
  ``SECRET#FINGERPRINT`` (every token a coordinator makes carries it). gRPC's
  Python API has no hook to check a pin during its own handshake, so the
  client first fetches the certificate with a TLS handshake of its own,
  compares its fingerprint with the pin, and then gives gRPC exactly that
  certificate as the only trusted root: only the holder of the coordinator's
  key can pass. The name checked is one the certificate holds
  ("artel-coordinator" for the coordinator's self-signed certificate), so the
  address dialed need not appear in it.
* a CA file (``ca`` / ARTEL_CA): standard chain and host-name checks against
  the host dialed, or against ``tls_name``.
* plain TCP (``insecure=True`` / ARTEL_INSECURE=1), for a coordinator started
  with --insecure.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import ssl
import tempfile
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import grpc

from .errors import AuthError, InvalidArgumentError, UnavailableError

PIN_NAME = "artel-coordinator"  # a name the coordinator's self-signed certificate holds
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass
class Trust:
    """One way of trusting the coordinator (exactly one field set)."""

    insecure: bool = False
    ca_pem: bytes = b""
    ca_path: str = ""
    fingerprint: str = ""
    server_name: str = ""  # with a CA: the name to check instead of the host dialed


def split_token(token: str) -> Tuple[str, str]:
    """("SECRET", "FINGERPRINT") from "SECRET#FINGERPRINT"; ("SECRET", "") without '#'."""
    secret, _, pin = token.partition("#")
    return secret, pin


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def resolve(token: str, ca: Optional[str], tls_fingerprint: Optional[str],
            tls_name: Optional[str], insecure: Optional[bool]) -> Trust:
    """The trust the arguments ask for. Arguments win over the environment as a
    group: when none of ca, tls_fingerprint and insecure is given, ARTEL_CA,
    ARTEL_TLS_FINGERPRINT and ARTEL_INSECURE are read; when none of those is
    set either, the token's pin is used."""
    if ca is None and tls_fingerprint is None and insecure is None:
        ca = os.environ.get("ARTEL_CA") or None
        tls_fingerprint = os.environ.get("ARTEL_TLS_FINGERPRINT") or None
        insecure = _env_flag("ARTEL_INSECURE")
    trust = Trust(insecure=bool(insecure), server_name=tls_name or "")
    if ca:
        ca = os.fspath(ca)
        try:
            with open(ca, "rb") as f:
                trust.ca_pem = f.read()
        except OSError as e:
            raise InvalidArgumentError(
                f"ca '{ca}' cannot be read ({e.strerror}); give the coordinator's certificate "
                "(its DATA/tls/cert.pem) or the CA that signed it") from None
        if b"-----BEGIN CERTIFICATE-----" not in trust.ca_pem:
            raise InvalidArgumentError(f"ca '{ca}' holds no PEM certificate")
        trust.ca_path = ca
    trust.fingerprint = (tls_fingerprint or "").strip()
    if not trust.fingerprint and not trust.ca_pem and not trust.insecure:
        trust.fingerprint = split_token(token)[1]
    ways = int(trust.insecure) + int(bool(trust.ca_pem)) + int(bool(trust.fingerprint))
    if ways == 0:
        raise InvalidArgumentError(
            "cannot verify the coordinator: pass ca=PATH or set ARTEL_CA (its certificate, "
            "DATA/tls/cert.pem), pass tls_fingerprint=FP or set ARTEL_TLS_FINGERPRINT (printed "
            "when it starts), or use a token that carries it (TOKEN#FP, as `artel token create` "
            "prints it); plain TCP needs insecure=True or ARTEL_INSECURE=1")
    if ways > 1:
        raise InvalidArgumentError(
            "choose one of insecure, ca and tls_fingerprint (or ARTEL_INSECURE, ARTEL_CA and "
            "ARTEL_TLS_FINGERPRINT; a token's #FP counts as a fingerprint)")
    if trust.fingerprint and not _HEX64.match(trust.fingerprint):
        raise InvalidArgumentError(f"the TLS fingerprint '{trust.fingerprint}' is not 64 hex "
                                   "digits (a SHA-256)")
    trust.fingerprint = trust.fingerprint.lower()
    return trust


def split_address(address: str) -> Tuple[str, int]:
    """("host", port) from "host:port" or "[v6]:port"."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise InvalidArgumentError(f"coordinator address '{address}' is not host:port, "
                                   "e.g. 127.0.0.1:7700")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def fetch_certificate(address: str, timeout: float) -> bytes:
    """The DER certificate the server at `address` presents, read with a TLS
    handshake that verifies nothing (the caller checks the fingerprint)."""
    host, port = split_address(address)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])  # what a gRPC server expects
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            with context.wrap_socket(sock, server_hostname=None) as tls:
                der = tls.getpeercert(binary_form=True)
    except ssl.SSLError as e:
        raise UnavailableError(
            f"TLS handshake with the coordinator at {address} failed ({e.reason or e}); if it "
            "was started with --insecure, connect with insecure=True") from None
    except OSError as e:
        reason = e.strerror or str(e) or type(e).__name__
        raise UnavailableError(
            f"cannot reach the coordinator at {address}: {reason} (is it running? check the "
            "address given to artel.connect() or ARTEL_COORDINATOR)") from None
    if not der:
        raise UnavailableError(f"the server at {address} presented no certificate")
    return der


def _certificate_names(pem: bytes) -> List[str]:
    """DNS names and IP addresses the certificate holds (empty if unreadable)."""
    path = ""
    try:
        with tempfile.NamedTemporaryFile("wb", suffix=".pem", delete=False) as f:
            f.write(pem)
            path = f.name
        decoded = ssl._ssl._test_decode_cert(path)  # type: ignore[attr-defined]
        return [value for kind, value in decoded.get("subjectAltName", ())
                if kind in ("DNS", "IP Address")]
    except Exception:  # noqa: BLE001 - best effort; the default name applies
        return []
    finally:
        if path:
            os.unlink(path)


def _pinned_name(pem: bytes, host: str) -> str:
    names = _certificate_names(pem)
    if not names or PIN_NAME in names:
        return PIN_NAME
    return host if host in names else names[0]


def make_channel(address: str, trust: Trust, options: Sequence[Tuple[str, object]],
                 timeout: float) -> grpc.Channel:
    """A gRPC channel to `address` that trusts the coordinator as `trust` says.

    With a pin, checks the certificate now: AuthError when its fingerprint is
    not the pinned one, UnavailableError when the coordinator cannot be
    reached."""
    options = list(options)
    if trust.insecure:
        return grpc.insecure_channel(address, options=options)
    if trust.ca_pem:
        if trust.server_name:
            options.append(("grpc.ssl_target_name_override", trust.server_name))
        credentials = grpc.ssl_channel_credentials(root_certificates=trust.ca_pem)
        return grpc.secure_channel(address, credentials, options=options)
    der = fetch_certificate(address, timeout)
    got = hashlib.sha256(der).hexdigest()
    if got != trust.fingerprint:
        raise AuthError(
            f"the coordinator's certificate has fingerprint {got}, not the pinned "
            f"{trust.fingerprint}; check the address, or the fingerprint the coordinator "
            "printed at start")
    pem = ssl.DER_cert_to_PEM_cert(der).encode("ascii")
    options.append(("grpc.ssl_target_name_override", _pinned_name(pem, split_address(address)[0])))
    credentials = grpc.ssl_channel_credentials(root_certificates=pem)
    return grpc.secure_channel(address, credentials, options=options)
