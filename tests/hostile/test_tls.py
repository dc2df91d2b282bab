"""DICOM TLS on the node's TLS port: dcmtk and `dicom-node echo/send` with certificates made by the test, and
hostile peers that never finish, or abuse, the TLS handshake.

The node requires a client certificate signed by its configured CA (the
`client` certificate); every test ends with a plain C-ECHO and storescu that
must succeed, earlier data unchanged.
"""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from dicom_node import metrics
from dicom_node.config import DicomSettings, ExportSettings
from dicom_node.net.address import parse_address
from dicom_node.net.pdu import INVALID_PARAMETER_VALUE, abort_pdu
from dicom_node.net.scp import StorageSCP
from dicom_node.net.scu import PeerUnavailable, Scu
from dicom_node.net.tls import certificate_not_after, client_tls, watch_certificate
from tests.dcmtk import echoscu, storescu
from tests.dicom_files import copy_with_new_uid
from tests.export.peers import run_cli, self_signed
from tests.hostile.conftest import HostileNode
from tests.hostile.peer import RawPeer, associate_rq, pdu
from tests.hostile.test_connections import FOUR_GIB, closed_at_deadline, streamed_with_flat_memory
from tests.node.index import query
from tests.node_process import free_port


def dcmtk_tls(node: HostileNode, client: tuple[Path, Path] | None) -> tuple[str, ...]:
    """dcmtk's TLS options: our client certificate (None: anonymous TLS), trusting the node's certificate."""
    identity = ("+tls", str(client[1]), str(client[0]), "-pw") if client else ("+tla",)
    return (*identity, "+cf", str(node.certs.server[0]))


def trusted_tls(node: HostileNode):  # type: ignore[no-untyped-def]
    context, _ = client_tls("127.0.0.1", str(node.certs.server[0]), *map(str, node.certs.client))
    return context


def test_dcmtk_echo_and_store_over_tls(node: HostileNode, tmp_path: Path) -> None:
    options = dcmtk_tls(node, node.certs.client)
    echo = echoscu(node.tls_port, extra=options)
    assert echo.returncode == 0, echo.stdout + echo.stderr
    sop_uid = copy_with_new_uid(node.source, tmp_path / "tls.dcm")
    store = storescu(node.tls_port, tmp_path / "tls.dcm", extra=options)
    assert store.returncode == 0, store.stdout + store.stderr
    assert query(node.node.data_dir, "SELECT count(*) FROM instance WHERE sop_instance_uid = ?", sop_uid) == [(1,)]
    node.stored = node._files()
    node.serves(tmp_path / "after")


def test_tls_port_requires_a_trusted_client_certificate(node: HostileNode, tmp_path: Path) -> None:
    stranger = self_signed(tmp_path, "stranger", "stranger")
    for options in (dcmtk_tls(node, stranger), dcmtk_tls(node, None)):
        echo = echoscu(node.tls_port, extra=options)
        assert echo.returncode != 0, "a client without a trusted certificate got through"
    assert "TLS handshake failed" in node.node.log()
    plain = echoscu(node.tls_port)
    assert plain.returncode != 0, "plain DICOM on the TLS port"
    node.serves(tmp_path)


def test_cli_echo_and_send_over_tls(node: HostileNode, tmp_path: Path) -> None:
    address = f"CLARA@127.0.0.1:{node.tls_port}"
    cert, key = node.certs.client
    tls = ["--tls-ca", str(node.certs.server[0]), "--tls-cert", str(cert), "--tls-key", str(key), "--calling-ae", "DICOM_NODE"]
    echo = run_cli("echo", address, *tls)
    assert echo.returncode == 0 and "C-ECHO status 0x0000" in echo.stdout, echo.stdout + echo.stderr
    sop_uid = copy_with_new_uid(node.source, tmp_path / "send.dcm")
    send = run_cli("send", str(tmp_path / "send.dcm"), "--to", address, *tls)
    assert send.returncode == 0 and "sent 1 of 1" in send.stdout, send.stdout + send.stderr
    assert query(node.node.data_dir, "SELECT count(*) FROM instance WHERE sop_instance_uid = ?", sop_uid) == [(1,)]
    node.stored = node._files()
    # `--tls` alone verifies the node against the system's CAs, which do not know its self-signed certificate
    with pytest.raises(PeerUnavailable, match="over TLS.*handshake failed"):
        Scu(ExportSettings(calling_ae_title="DICOM_NODE"), client_tls("127.0.0.1", None)).echo(parse_address(address))
    node.serves(tmp_path / "after")


def test_plain_bytes_on_the_tls_port(node: HostileNode, tmp_path: Path) -> None:
    """An A-ASSOCIATE-RQ in clear on the TLS port -> the TLS handshake fails, closed at once."""
    with RawPeer(node.tls_port) as peer:
        peer.send(associate_rq("INSIDER"))
        closed, _ = peer.closed_by_node(15)
        assert closed
        node.log_about(peer.local_port, "TLS handshake failed")
    node.serves(tmp_path)


def test_stalled_tls_handshake(node: HostileNode, tmp_path: Path) -> None:
    """Half a TLS ClientHello, then silence -> closed at the handshake deadline."""
    with RawPeer(node.tls_port) as peer:
        peer.send(bytes.fromhex("16030100a5010000a10303"))
        closed_at_deadline(node, peer)
    node.serves(tmp_path)


def test_four_gib_claims_over_tls(node: HostileNode, tmp_path: Path) -> None:
    """A trusted TLS client claiming 4 GiB, before and inside an association -> closed, memory flat."""
    with RawPeer(node.tls_port, tls=trusted_tls(node)) as peer:
        peer.send(pdu(0x01, b"", length=FOUR_GIB))
        streamed_with_flat_memory(node, peer)
        node.log_about(peer.local_port, f"A-ASSOCIATE-RQ claims {FOUR_GIB} bytes")
    with RawPeer(node.tls_port, tls=trusted_tls(node)) as peer:
        peer.associate("INSIDER")
        peer.send(pdu(0x04, b"", length=FOUR_GIB))
        assert streamed_with_flat_memory(node, peer) in (b"", abort_pdu(INVALID_PARAMETER_VALUE))
        assert node.association_state(peer.local_port) == "aborted"
    node.serves(tmp_path)


def test_unusable_certificate_files_stop_the_start_naming_the_keys(tmp_path: Path) -> None:
    settings = DicomSettings(host="127.0.0.1", port=free_port(), tls_port=free_port(), tls_cert_file=str(tmp_path / "missing.pem"),
                             tls_key_file=str(tmp_path / "missing.key"))
    scp = StorageSCP(settings, tmp_path, indexer=None, queue=None)  # type: ignore[arg-type]  # never reached
    with pytest.raises(OSError, match="dicom.tls_cert_file, tls_key_file or tls_ca_file cannot be used"):
        scp.start()
    with socket.socket() as again:  # the plain port was never opened
        again.bind(("127.0.0.1", settings.port))


def test_a_certificate_expiring_within_30_days_is_logged_at_start(node: HostileNode) -> None:
    """The test certificates are valid for one day: the node says so when it starts."""
    lines = [line for line in node.node.log().splitlines() if "dicom TLS certificate" in line]
    assert lines and "WARNING" in lines[0] and "renew it" in lines[0], lines


def test_an_expired_certificate_is_logged_as_an_error_and_exported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cert, _key = self_signed(tmp_path, "server", "127.0.0.1")
    not_after = certificate_not_after(str(cert))
    assert 0 < not_after - time.time() <= 86400 + 60  # openssl -days 1
    with caplog.at_level(logging.INFO, logger="dicom_node.net.tls"):
        watch_certificate("dicom", str(cert), now=not_after + 3600)  # as if started an hour after it expired
    (record,) = caplog.records
    assert record.levelno == logging.ERROR and "EXPIRED" in record.getMessage()
    exported = [line for line in metrics.exposition(CollectorRegistry()).decode().splitlines()
                if line.startswith('dicom_node_tls_certificate_expiry_seconds{endpoint="dicom"}')]
    assert len(exported) == 1 and 0 < float(exported[0].split()[-1]) <= 86400 + 60
