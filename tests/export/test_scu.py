"""The C-STORE/C-ECHO SCU against real peers, and the classification of what they answer."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread

from dicom_node.config import Destination, ExportSettings
from dicom_node.net.address import DicomAddress, parse_address
from dicom_node.net.scu import PeerRefused, PeerUnavailable, Scu, read_item, tls_args
from dicom_node.outcomes import Outcome, classify_status
from tests.export.conftest import result_like_objects
from tests.export.peers import P001, Orthanc, StrictStoreSCP, TlsStoreSCP
from tests.node_process import free_port

FAST = ExportSettings(calling_ae_title="DICOM_NODE", connection_timeout=3, acse_timeout=5, dimse_timeout=10, network_timeout=10)
SCU = Scu(FAST)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ORTHANC@127.0.0.1:4242", DicomAddress("ORTHANC", "127.0.0.1", 4242)),
        ("PACS 1@pacs.example.org:104", DicomAddress("PACS 1", "pacs.example.org", 104)),
        ("AE@[::1]:11112", DicomAddress("AE", "::1", 11112)),
    ],
)
def test_parse_address(text: str, expected: DicomAddress) -> None:
    assert parse_address(text) == expected
    assert parse_address(str(expected)) == expected


@pytest.mark.parametrize("text", ["127.0.0.1:4242", "AE@127.0.0.1", "AE@host:0", "AE@host:x", "WAY_TOO_LONG_AE_TITLE@h:1", "@h:1"])
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="AE|port|host"):
        parse_address(text)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (0x0000, Outcome.DELIVERED),
        (0xB000, Outcome.DELIVERED),
        (0xB007, Outcome.DELIVERED),
        (0xA700, Outcome.RETRY),
        (0xA7FF, Outcome.RETRY),
        (0x0110, Outcome.RETRY),
        (0x0122, Outcome.REFUSED),
        (0xA900, Outcome.REFUSED),
        (0xC211, Outcome.REFUSED),
    ],
)
def test_classify_status(status: int, outcome: Outcome) -> None:
    result = classify_status(status, "peer says why")
    assert result.outcome is outcome and result.status == status
    if status:
        assert f"0x{status:04X}" in result.reason and "peer says why" in result.reason


def test_p001_reaches_orthanc_as_stored(orthanc: Orthanc) -> None:
    files = sorted(P001.glob("*.dcm"))
    items = [read_item(path) for path in files]
    assert SCU.echo(parse_address(orthanc.address)).status == 0
    answered: list[str] = []
    results = SCU.store(parse_address(orthanc.address), items, on_result=lambda item, _r: answered.append(item.sop_instance_uid))
    assert [r.outcome for r in results] == [Outcome.DELIVERED] * len(files)
    assert answered == [item.sop_instance_uid for item in items]
    assert sorted(orthanc.sop_instance_uids()) == sorted(item.sop_instance_uid for item in items)
    # Sent in its own transfer syntax (JPEG Lossless), not recompressed: Orthanc keeps what it received.
    instance = orthanc.lookup(items[0].sop_instance_uid, "Instance")
    stored = orthanc.get(f"/instances/{instance}/header?simplify")
    assert stored["TransferSyntaxUID"] == dcmread(files[0], stop_before_pixels=True).file_meta.TransferSyntaxUID


def test_refused_sop_class_is_permanent_and_the_rest_goes_through(strict_scp: StrictStoreSCP, tmp_path: Path) -> None:
    seg, sr = (read_item(path) for path in result_like_objects(tmp_path / "results"))
    results = SCU.store(parse_address(strict_scp.address), [seg, sr])
    assert results[0].outcome is Outcome.REFUSED
    assert "Segmentation Storage" in results[0].reason and "refused" in results[0].reason
    assert results[1].outcome is Outcome.DELIVERED
    assert len(list(strict_scp.received.iterdir())) == 1


def test_every_context_refused_is_permanent_with_the_peers_reason(strict_scp: StrictStoreSCP, tmp_path: Path) -> None:
    """A PACS that accepts none of the proposed contexts answered: that is a refusal, not a timeout."""
    seg = read_item(result_like_objects(tmp_path / "results")[0])
    with pytest.raises(PeerRefused, match=r"refused every presentation context proposed: Segmentation Storage .*abstract syntax not supported") as refused:
        SCU.store(parse_address(strict_scp.address), [seg])
    assert "did not answer" not in str(refused.value)
    assert not list(strict_scp.received.iterdir())


def test_rejected_association_is_permanent_with_the_peers_reason(tmp_path: Path) -> None:
    scp = StrictStoreSCP(tmp_path / "refusing", ae_title="REFUSER", refuse=True)
    scp.start()
    try:
        with pytest.raises(PeerRefused, match=r"REFUSER@127.0.0.1:\d+ rejected the association \(rejected permanent, by the service user: no reason given\)"):
            SCU.echo(parse_address(scp.address))
    finally:
        scp.stop()


def test_nothing_listening_is_transient_with_a_clear_message() -> None:
    address = DicomAddress("NOBODY", "127.0.0.1", free_port())
    with pytest.raises(PeerUnavailable, match="cannot connect to NOBODY@127.0.0.1"):
        SCU.echo(address)


def test_tls_destination_with_client_certificate(tls_pair: tuple[TlsStoreSCP, Path, Path]) -> None:
    scp, client_cert, client_key = tls_pair
    dest = Destination(
        name="TLS", ae_title=scp.ae_title, host="127.0.0.1", port=scp.port,
        tls=True, tls_ca_file=str(scp.cert), tls_cert_file=str(client_cert), tls_key_file=str(client_key),
    )
    address = DicomAddress(dest.ae_title, dest.host, dest.port)
    scu = Scu(FAST, tls_args(dest))
    assert scu.echo(address).status == 0
    items = [read_item(path) for path in sorted(P001.glob("*.dcm"))[:3]]
    assert [r.outcome for r in scu.store(address, items)] == [Outcome.DELIVERED] * 3
    assert len(list(scp.received.iterdir())) == 3

    untrusted = dest.model_copy(update={"tls_ca_file": str(client_cert)})  # the server's certificate is not signed by this
    with pytest.raises(PeerUnavailable, match="over TLS.*handshake"):
        Scu(FAST, tls_args(untrusted)).echo(address)
