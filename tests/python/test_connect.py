"""Connecting: tokens, TLS trust, and errors that keep the coordinator's
code and message."""

from __future__ import annotations

import grpc
import pytest

import artel


def test_connect_from_environment(cluster, monkeypatch):
    monkeypatch.setenv("ARTEL_COORDINATOR", cluster.address)
    monkeypatch.setenv("ARTEL_TOKEN", cluster.admin_token)
    for name in ("ARTEL_CA", "ARTEL_TLS_FINGERPRINT", "ARTEL_INSECURE"):
        monkeypatch.delenv(name, raising=False)
    with artel.connect() as client:
        assert client.address == cluster.address
        assert any(app.name == "primes" for app in client.apps())


def test_wrong_token_is_an_auth_error_with_the_coordinators_message(cluster):
    pin = cluster.admin_token.split("#")[1]
    client = artel.connect(cluster.address, "artel_not-a-token#" + pin)
    with pytest.raises(artel.AuthError) as info:
        client.workers()
    assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert str(info.value) == ("the token is not valid on this coordinator; check --token / "
                               "ARTEL_TOKEN")


def test_a_token_without_the_right_role_is_an_auth_error(cluster):
    token = cluster.artel("token", "create", "--role", "worker").splitlines()[0].strip()
    with artel.connect(cluster.address, token) as client:
        with pytest.raises(artel.AuthError) as info:
            client.tasks()
    assert info.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert "needs a submitter token, but a worker token was given" in str(info.value)


def test_a_certificate_other_than_the_pinned_one_is_refused(cluster):
    secret = cluster.admin_token.split("#")[0]
    with pytest.raises(artel.AuthError) as info:
        artel.connect(cluster.address, secret + "#" + "0" * 64)
    assert "not the pinned " + "0" * 64 in str(info.value)
    assert "the coordinator's certificate has fingerprint" in str(info.value)


def test_other_ways_to_trust_the_coordinator(cluster, monkeypatch):
    secret, pin = cluster.admin_token.split("#")
    cert = cluster.root / "coordinator" / "tls" / "cert.pem"
    with artel.connect(cluster.address, secret, ca=cert) as client:
        assert client.workers()
    with artel.connect(cluster.address, secret, tls_fingerprint=pin.upper()) as client:
        assert client.workers()
    monkeypatch.setenv("ARTEL_TLS_FINGERPRINT", pin)
    with artel.connect(cluster.address, secret) as client:
        assert client.workers()


def test_no_way_to_verify_the_coordinator_says_what_to_give(cluster, monkeypatch):
    for name in ("ARTEL_CA", "ARTEL_TLS_FINGERPRINT", "ARTEL_INSECURE"):
        monkeypatch.delenv(name, raising=False)
    secret = cluster.admin_token.split("#")[0]
    with pytest.raises(artel.Error) as info:
        artel.connect(cluster.address, secret)
    for hint in ("ca=", "ARTEL_CA", "tls_fingerprint=", "ARTEL_TLS_FINGERPRINT",
                 "insecure=True", "ARTEL_INSECURE=1"):
        assert hint in str(info.value)
    with pytest.raises(artel.InvalidArgumentError, match="choose one"):
        artel.connect(cluster.address, cluster.admin_token, insecure=True,
                      tls_fingerprint=cluster.admin_token.split("#")[1])


def test_no_token(cluster, monkeypatch):
    monkeypatch.delenv("ARTEL_TOKEN", raising=False)
    with pytest.raises(artel.AuthError, match="ARTEL_TOKEN"):
        artel.connect(cluster.address)


def test_unreachable_coordinator(cluster):
    with pytest.raises(artel.UnavailableError, match="cannot reach the coordinator at "
                                                     "127.0.0.1:1"):
        artel.connect("127.0.0.1:1", cluster.admin_token, timeout=2)


def test_unknown_ids_are_not_found(client):
    with pytest.raises(artel.NotFoundError) as info:
        client.job(987654)
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    assert str(info.value) == "training job 987654 does not exist; run `artel jobs`"
    with pytest.raises(artel.NotFoundError, match="task 987654"):
        client.task(987654)
    with pytest.raises(artel.NotFoundError, match="data set 'nothing-here' does not exist"):
        client.dataset("nothing-here")


def test_blobs_round_trip(client):
    data = bytes(range(256)) * 9000  # more than one 1 MiB chunk
    digest = client.upload_blob(data)
    assert client.has_blobs([digest, "0" * 64]) == [True, False]
    assert client.download_blob(digest) == data
    with pytest.raises(artel.NotFoundError, match="is not stored on the coordinator"):
        client.download_blob("0" * 64)
