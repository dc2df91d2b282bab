"""The node's configuration: one TOML file, environment overrides, command-line flags.

Precedence, lowest to highest: built-in defaults, the TOML file
(`config/dicom-node.toml` documents every key), environment variables
`DICOM_NODE_<SECTION>__<KEY>` (for example `DICOM_NODE_DICOM__PORT=11113`;
lists and tables as JSON), then command-line flags. A bad value stops start-up
with a message naming the key, because a node that silently falls back to a
default would accept studies from sources nobody meant to allow.

The called AEs, allowed sources and destinations (with their pipelines' routes) only seed the database: at
each start the file adds those the database has never had, and the database is the truth for the others; they
change over REST and the CLI without a restart (`store/config_store.py`, docs/operations.md).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_validator, model_validator

from dicom_node.inference.settings import InferenceSettings
from dicom_node.pipeline.settings import ProcessingSettings
from dicom_node.pipelines.registry import PIPELINES

ENV_PREFIX = "DICOM_NODE_"
AE_TITLE_PATTERN = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # DICOM AE: 16 chars, no backslash or control
# Host name labels (RFC 1123), underscores allowed as container networks' service names have them.
HOST_NAME_PATTERN = re.compile(r"^(?=.{1,253}$)[\w](?:[\w-]{0,61}[\w])?(?:\.[\w](?:[\w-]{0,61}[\w])?)*\.?$", re.ASCII)


class ConfigError(Exception):
    """A configuration problem; the message names the key."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_ae_title(value: str) -> str:
    """PS3.5's AE value representation: leading and trailing spaces are not significant, so they are dropped."""
    value = value.strip(" ")
    if not AE_TITLE_PATTERN.match(value):
        raise ValueError("an AE title (PS3.5 AE) is 1 to 16 characters, not all spaces, with no backslash or control characters")
    return value


def _check_host(value: str) -> str:
    """An IP address or a host name (RFC 1123 labels): a typo such as 'pacs:4242' or a URL is caught when it is entered."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if not HOST_NAME_PATTERN.match(value):
        raise ValueError("a host is an IP address or a host name (letters, digits, hyphens, underscores and dots; no port, no scheme)")
    return value


def _check_host_or_network(value: str | None) -> str | None:
    """A host, or a network in CIDR notation (10.0.0.0/24) that every sender's address in it matches."""
    if value is None or "/" not in value:
        return None if value is None else _check_host(value)
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise ValueError("a network is an address with a prefix length, e.g. 10.0.0.0/24") from None


class AllowedSource(Section):
    """A calling AE title allowed to send, optionally only from one host (IP address or name) or network."""

    name: str = Field(
        default="", max_length=64, description="Name of this entry (REST and CLI). Empty: the AE title, with '@host' when a host is set."
    )
    ae_title: str = Field(description="Calling AE title of the sender.")
    host: str | None = Field(
        default=None, description="If set, the sender must connect from this address, or from this network (CIDR, e.g. 10.0.0.0/24)."
    )
    called_aes: list[str] = Field(default_factory=list, description="Called AE titles of this node the sender may use. Empty: any of them.")
    query_retrieve: bool = Field(
        default=False,
        description=(
            "May also query and retrieve (C-FIND, C-MOVE, C-GET; Patient and Study Root) what the node holds, received "
            "instances and results alike. C-MOVE sends only to configured destinations (`[[destinations]]`, by AE title)."
        ),
    )

    _ae = field_validator("ae_title")(_check_ae_title)
    _host = field_validator("host")(_check_host_or_network)

    @field_validator("called_aes")
    @classmethod
    def _called(cls, values: list[str]) -> list[str]:
        return [_check_ae_title(value) for value in values]

    @model_validator(mode="after")
    def _default_name(self) -> AllowedSource:
        if not self.name.strip():
            self.name = self.ae_title if self.host is None else f"{self.ae_title}@{self.host}"
        return self

    def admits(self, calling: str, address: str, called: str) -> bool:
        """Whether an association from `calling` at `address` to our `called` AE is this source's."""
        if calling != self.ae_title or (self.called_aes and called not in self.called_aes):
            return False
        if self.host is None or self.host == address:
            return True
        if "/" not in self.host:
            return False
        try:
            return ipaddress.ip_address(address) in ipaddress.ip_network(self.host)
        except ValueError:
            return False


class CalledAe(Section):
    """An AE title of this node and the pipelines that process what is sent to it."""

    ae_title: str = Field(description="Called AE title the sender addresses.")
    pipelines: list[str] = Field(
        default_factory=lambda: [next(iter(PIPELINES))],
        min_length=1,
        description=f"Pipelines run on series sent to this AE, each in its own job ({', '.join(PIPELINES)}).",
    )
    sop_classes: list[str] = Field(
        default_factory=list,
        description=(
            "Storage SOP Class UIDs this AE accepts (MIG's allowedSopClasses). Empty: every storage class of the standard, "
            "stored and indexed; only those the pipeline's selection takes start a job."
        ),
    )
    refused_sop_classes: list[str] = Field(
        default_factory=list,
        description="Storage SOP Class UIDs this AE refuses in association negotiation (MIG's ignoredSopClasses); each refusal is logged with the class's name.",
    )
    settle_seconds: float | None = Field(
        default=None,
        ge=0,
        description="Quiet time before a series last sent to this AE is queued (MIG's grouping timeout). Unset: jobs.settle_seconds.",
    )

    _ae = field_validator("ae_title")(_check_ae_title)

    @model_validator(mode="before")
    @classmethod
    def _one_pipeline(cls, data: Any) -> Any:
        """`pipeline = "NAME"`, as configurations before the list said it, is a list of one."""
        if isinstance(data, dict) and "pipeline" in data and "pipelines" not in data:
            data = {key: value for key, value in data.items() if key != "pipeline"} | {"pipelines": [data["pipeline"]]}
        return data

    @field_validator("pipelines")
    @classmethod
    def _registered(cls, names: list[str]) -> list[str]:
        unknown = [name for name in names if name not in PIPELINES]
        if unknown:
            raise ValueError(f"unknown pipeline(s) {unknown} (pipelines: {', '.join(PIPELINES)})")
        names = list(dict.fromkeys(names))
        stored = sum(map(len, names)) + len(names) - 1  # one column of 64 characters, one separator between names
        if stored > 64:
            raise ValueError(f"the pipelines' names take {stored} characters together with their separators (Series.pipeline), at most 64")
        return names

    @field_validator("sop_classes", "refused_sop_classes")
    @classmethod
    def _uids(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(r"[0-9]+(\.[0-9]+)*", value) or len(value) > 64:
                raise ValueError(f"{value!r} is not a SOP Class UID")
        return values


class DicomSettings(Section):
    """The Storage SCP."""

    host: str = Field(default="0.0.0.0", description="Address the SCP listens on.")
    port: int = Field(default=11112, ge=0, le=65535, description="DICOM port (plain TCP); 0: none, only `tls_port`.")
    tls_port: int = Field(
        default=0, ge=0, le=65535, description="DICOM TLS port (PS3.15 annex B; 2762 is registered); 0: none. Needs tls_cert_file and tls_key_file."
    )
    tls_cert_file: str | None = Field(default=None, description="Certificate (PEM, with its chain) of the TLS port.")
    tls_key_file: str | None = Field(default=None, description="Private key (PEM, unencrypted) of that certificate.")
    tls_ca_file: str | None = Field(
        default=None, description="CA bundle (PEM). If set, senders on the TLS port must present a client certificate it verifies."
    )
    called_aes: list[CalledAe] = Field(
        default_factory=lambda: [CalledAe(ae_title=p.called_ae, pipelines=[p.name]) for p in PIPELINES.values()],
        min_length=1,
        description="AE titles of this node, each bound to its pipelines; associations to any other called AE are rejected.",
    )
    allowed_sources: list[AllowedSource] = Field(
        default_factory=list,
        description="Calling AEs (and optionally hosts) allowed to associate. Empty: any source is accepted (a warning is logged).",
    )
    max_associations: int = Field(
        default=25, ge=1, le=1000, description="Concurrent associations per receiving process; more are rejected (transient, local limit exceeded)."
    )
    receive_processes: int = Field(
        default=1,
        ge=1,
        le=64,
        description=(
            "Processes that accept associations on the DICOM ports: this one plus N-1 that run only the Storage SCP on the "
            "same listening sockets, each with its own interpreter lock, so that concurrent associations use several cores. "
            "1 suits a 2-core machine that also runs the pipeline and mostly one sender (one process receives one association "
            "about 1.6x as fast as Orthanc); raise it to the cores when several senders send at once (four concurrent "
            "associations on 2 cores: 0.84-0.95x Orthanc with 1 process, 1.18x with 2, 1.17-1.24x with 4). Each process takes "
            "about 110 MB and applies max_associations and max_pending_connections on its own."
        ),
    )
    max_pdu: int = Field(
        default=262144,
        ge=0,
        description=(
            "Maximum PDU length we announce and receive; a longer P-DATA-TF aborts the association. "
            "0 announces no limit (P-DATA-TF are still refused beyond 64 MiB)."
        ),
    )
    handshake_timeout: float = Field(
        default=5.0, gt=0, description="Seconds from connect (TLS handshake included) to a complete A-ASSOCIATE-RQ; slower connections are closed."
    )
    max_pending_connections: int = Field(
        default=64,
        ge=1,
        le=10000,
        description=(
            "Connections still sending their A-ASSOCIATE-RQ held at once, per port, a quarter of them from one address; "
            "one more closes the oldest (of that address if it has its quarter). They take no association slot and no thread."
        ),
    )
    acse_timeout: float = Field(default=30.0, gt=0, description="Seconds to wait for association messages.")
    dimse_timeout: float = Field(default=60.0, gt=0, description="Seconds to wait for DIMSE messages.")
    network_timeout: float = Field(default=60.0, gt=0, description="Seconds of silence before an association is aborted.")
    duplicate_policy: Literal["overwrite", "keep-first", "reject"] = Field(
        default="overwrite",
        description=(
            "A SOP Instance UID received again: 'overwrite' stores the new copy (identical bytes change nothing; "
            "different bytes re-trigger the series' job), 'keep-first' acknowledges and discards the new copy, "
            "'reject' answers failure status 0xC221 and keeps the first."
        ),
    )
    reexport_resent: bool = Field(
        default=False,
        description=(
            "A series sent again with nothing new whose job is done: send that job's results again to where they went "
            "(a PACS that lost them, or routes the study again to get them). Off: one INFO line per association names the "
            "series and the job, for `dicom-node exports resend JOB --to DESTINATION`."
        ),
    )
    sync_directories: bool | Literal["auto"] = Field(
        default="auto",
        description=(
            "fsync an instance's directory besides its file. 'auto': a new instance's file (created in place) gets "
            "none on ext4 (with or without a journal) and XFS, where its fsync also makes its name durable; a file "
            "replaced by rename gets one unless the index commit's fsync (before the C-STORE answer) also commits "
            "the rename, i.e. unless the data dir is on a journaling ext4 or XFS that also holds the SQLite index; "
            "each choice is logged when first made."
        ),
    )
    min_free_disk_mb: int = Field(
        default=5120, ge=0, description="Below this much free space in the data dir, C-STORE answers 0xA700 (out of resources) and stores nothing."
    )
    max_message_mb: int = Field(
        default=1024,
        ge=1,
        description=(
            "Largest DIMSE message (a C-STORE's data set, one instance) an association may send, in MiB: it is held in "
            "memory while it arrives, so a larger one aborts the association (logged with the peer) before it can "
            "exhaust the node's memory. CT and MR images are below 1 MiB, enhanced multi-frame objects some hundreds."
        ),
    )
    peer_memory_mb: int = Field(
        default=0,
        ge=0,
        description=(
            "Memory the node may hold on behalf of peers, all together: the data sets of every association in progress "
            "and the STOW-RS bodies being read (an association's share is at most max_message_mb, a request's http.max_stow_mb). An association "
            "whose next fragment would pass it is aborted, a STOW-RS request answered 503, before the memory is taken. "
            "With several receive_processes each gets an equal share. 0: a quarter of the machine's memory (at least 256 MiB)."
        ),
    )
    query_max_matches: int = Field(
        default=1000,
        ge=1,
        le=65535,
        description=(
            "Most matches one C-FIND answers: a query that matches more is refused (0xA700, out of resources) with a "
            "comment asking to narrow it, rather than answered in part."
        ),
    )
    max_retrievals: int = Field(
        default=2,
        ge=1,
        le=100,
        description=(
            "C-MOVE and C-GET operations one receiving process runs at once; one more is refused (0xA701, out of "
            "resources) so that retrievals never starve the Storage SCP."
        ),
    )
    max_inflated_mb: int = Field(
        default=256,
        ge=1,
        description=(
            "A Deflated Explicit VR Little Endian data set is inflated (to check it) up to this many MiB; a larger one is "
            "refused with 0xA700 and stores nothing, so a deflate bomb costs at most this much memory."
        ),
    )


    @model_validator(mode="after")
    def _listeners(self) -> "DicomSettings":
        if not self.port and not self.tls_port:
            raise ValueError("port and tls_port are both 0: the node would not listen at all")
        if self.tls_port and not (self.tls_cert_file and self.tls_key_file):
            raise ValueError("tls_port needs tls_cert_file and tls_key_file")
        if self.tls_port and self.tls_port == self.port:
            raise ValueError("tls_port and port must differ")
        return self


class DatabaseSettings(Section):
    url: str = Field(default="", description="SQLAlchemy URL. Empty: SQLite (WAL) at <data_dir>/index.sqlite3. PostgreSQL: postgresql+psycopg2://user@host/db.")
    wait_seconds: float = Field(
        default=120.0,
        ge=0,
        description=(
            "How long a starting process waits for a database server that does not answer yet (PostgreSQL starting "
            "beside the node in compose or a pod), saying so in its log every few seconds, before it gives up; 0: at once."
        ),
    )


# Objects that are results or not images: stored and indexed, but they never start a job (nor a "skipped" job's
# warning), e.g. the node's own SEG/SR/secondary captures coming back from a PACS that forwards whole studies.
NON_JOB_SOP_CLASSES = [
    "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation
    "1.2.840.10008.5.1.4.1.1.88.11",  # Basic Text SR
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
    "1.2.840.10008.5.1.4.1.1.88.35",  # Extensible SR
    "1.2.840.10008.5.1.4.1.1.88.59",  # Key Object Selection
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture
    "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit Secondary Capture
    "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte Secondary Capture
    "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word Secondary Capture
    "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color Secondary Capture
    "1.2.840.10008.5.1.4.1.1.11.1",  # Grayscale Softcopy Presentation State
    "1.2.840.10008.5.1.4.1.1.11.2",  # Color Softcopy Presentation State
    "1.2.840.10008.5.1.4.1.1.11.3",  # Pseudo-Color Softcopy Presentation State
    "1.2.840.10008.5.1.4.1.1.11.4",  # Blending Softcopy Presentation State
    "1.2.840.10008.5.1.4.1.1.104.1",  # Encapsulated PDF
    "1.2.840.10008.5.1.4.1.1.481.3",  # RT Structure Set
]


class JobSettings(Section):
    settle_seconds: float = Field(
        default=0.0,
        ge=0,
        description=(
            "Quiet time after the last association that sent a series before its job is queued. 0: as soon as that "
            "association is released (instances arriving later start a new job that supersedes the first). Set a few "
            "seconds where one series arrives over several associations in a row (e.g. one association per instance)."
        ),
    )
    incomplete_grace_seconds: float = Field(
        default=3600.0,
        ge=0,
        description=(
            "A series sent only on associations that ended abnormally (aborted, connection lost, cut by a restart) is held "
            "back until a sender completes it with a normal release (re-sending the whole series is enough: instances "
            "already stored are kept). After this long without one it is processed anyway and its result (SR, summary "
            "page, JSON) says that its input may be incomplete."
        ),
    )
    ignore_sop_classes: list[str] = Field(
        default_factory=lambda: list(NON_JOB_SOP_CLASSES),
        description="SOP Class UIDs that are stored but never start a job: results (SEG, SR, secondary capture, KO, presentation states) and non-images.",
    )
    workers: int = Field(default=1, ge=0, description="Pipeline worker threads in this process (0: receive only, another process runs the jobs).")
    poll_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often the scheduler and idle workers look at the database; within one process they are also woken at once (association released, job queued).",
    )
    retry_delay_seconds: float = Field(default=30.0, ge=0, description="Delay before a job that waited on an unavailable inference server is tried again.")
    max_attempts: int = Field(
        default=20, ge=1, description="Attempts of a job (transient failures, or its process dying while running it) before it is failed."
    )
    lease_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Lease of a running job (and of an open association); its process renews it every third of this. When a "
        "process dies, another worker takes its jobs over (and its associations stop holding their series back) once the lease has run out.",
    )


RetrieveMethod = Literal["C-MOVE", "C-GET", "WADO-RS"]


class DeidentificationProfile(Section):
    """PS3.15 Annex E for one destination: the Basic Application Level Confidentiality Profile and its options.

    Applied to each object as it is sent (dicom_node/deidentify); the stored instances are untouched. UIDs, Patient ID
    and accession number are replaced by a keyed mapping (a secret in the data dir), the same for every export.
    """

    enabled: bool = Field(default=False, description="De-identify what is sent to this destination (research, cloud).")
    retain_longitudinal_modified_dates: bool = Field(
        default=True,
        description="Retain Longitudinal Temporal Information with Modified Dates: dates shifted by a per-patient number of days "
        "(kept apart from the key, the same for every study of the patient). False: dates removed or emptied.",
    )
    max_date_shift_days: int = Field(default=3650, ge=1, le=36500, description="Dates move back by 1 to this many days.")
    retain_patient_characteristics: bool = Field(default=False, description="Retain Patient Characteristics: sex, age, size, weight...")
    retain_device_identity: bool = Field(default=False, description="Retain Device Identity: station name, serial numbers...")
    retain_institution_identity: bool = Field(default=False, description="Retain Institution Identity: institution name and address...")
    retain_uids: bool = Field(default=False, description="Retain UIDs: send the original UIDs instead of pseudonyms.")
    retain_safe_private: bool = Field(
        default=False, description="Retain Safe Private: keep the private attributes of the creators listed in safe_private_creators."
    )
    safe_private_creators: list[str] = Field(default_factory=list, description="Private creators whose attributes are safe to keep.")
    clean_descriptors: bool = Field(
        default=True, description="Clean Descriptors: keep descriptions and comments with identifying values cut out, instead of removing them."
    )
    clean_structured_content: bool = Field(
        default=True,
        description="Clean Structured Content: keep an SR's content tree, cleaned (UIDs mapped, dates shifted, names and identifying "
        "text removed); without it SRs are not sent to this destination.",
    )
    pixels_cleaned: bool = Field(
        default=False,
        description="Clean Pixel Data: the operator vouches that the pixels carry no identity. Without it, images with Burned In "
        "Annotation YES (or unknown, for secondary captures) are not sent to this destination.",
    )


class Destination(Section):
    """A DICOM peer results are sent to, and (with a `retrieve_method`) a source studies are retrieved from on request."""

    name: str = Field(min_length=1, max_length=64, description="Name used in pipeline destination lists and in the exports table.")
    ae_title: str = Field(description="Called AE title of the peer.")
    host: str = Field(description="Host name or address of the peer.")
    port: int = Field(ge=1, le=65535, description="Port of the peer.")
    tls: bool = Field(default=False, description="Use TLS (certificates below).")
    tls_ca_file: str | None = Field(default=None, description="CA bundle verifying the peer.")
    tls_cert_file: str | None = Field(default=None, description="Client certificate.")
    tls_key_file: str | None = Field(default=None, description="Client key.")
    rejection_notes: bool = Field(
        default=False,
        description=(
            "The peer implements IHE IOCM: when a newer result of a series replaces one sent here (new content gets new "
            "UIDs) and no longer has some of its objects (e.g. a key image), the node sends a Key Object Selection "
            "\"Rejected for Quality Reasons\" (DCM 113001) that withdraws them. Off: they stay, listed as superseded on the node."
        ),
    )
    retrieve_method: RetrieveMethod | None = Field(
        default=None,
        description=(
            "Makes the peer a source too: studies are found on it by C-FIND (Study Root) and retrieved on request "
            "(`/api/inference`, `dicom-node process`) by 'C-MOVE' (the peer sends to this node's Storage SCP, so it must "
            "know the node's AE title, host and port), 'C-GET' (over the node's own association) or 'WADO-RS' (from wado_rs_url)."
        ),
    )
    wado_rs_url: str = Field(default="", description="DICOMweb base URL of the peer, e.g. http://pacs:8042/dicom-web (retrieve_method WADO-RS).")
    wado_rs_token: str = Field(default="", description="Bearer token for wado_rs_url; empty: none.")
    wado_rs_user: str = Field(default="", description="User name for HTTP basic authentication at wado_rs_url; empty: none.")
    wado_rs_password: str = Field(default="", description="Password of wado_rs_user.")
    include_source: bool = Field(
        default=False,
        description="Also send the source series the results were made from (a research archive has no copy of it).",
    )
    deidentification: DeidentificationProfile = Field(
        default_factory=DeidentificationProfile, description="De-identification (PS3.15 Annex E) of what is sent there."
    )

    _ae = field_validator("ae_title")(_check_ae_title)
    _host = field_validator("host")(_check_host)

    @model_validator(mode="after")
    def _wado_rs(self) -> "Destination":
        if self.retrieve_method == "WADO-RS" and not self.wado_rs_url.startswith(("http://", "https://")):
            raise ValueError("retrieve_method WADO-RS needs wado_rs_url (http:// or https://)")
        if self.wado_rs_token and self.wado_rs_user:
            raise ValueError("wado_rs_token and wado_rs_user are exclusive: one way to authenticate")
        return self


class PipelineConfig(Section):
    destinations: list[str] = Field(default_factory=list, description="Names of destinations the results go to.")
    processing: SerializeAsAny[ProcessingSettings] = Field(
        default_factory=ProcessingSettings, description="The image pipeline's parameters (its own `settings_type`)."
    )


class ExportSettings(Section):
    enabled: bool = Field(
        default=True,
        description="Run the export sender in this process. Any number of processes sharing one database may: each claims its own rows, "
        "under a lease (export.lease_seconds).",
    )
    calling_ae_title: str = Field(
        default="",
        description=(
            "Our AE title when sending (and for `echo`/`send`). Empty: the node's first called AE (dicom.called_aes), "
            "so a PACS that knows the node by one AE title accepts its results too."
        ),
    )
    retry_initial_seconds: float = Field(default=5.0, gt=0, description="First retry delay; doubled each attempt.")
    retry_max_seconds: float = Field(default=300.0, gt=0, description="Longest delay between two attempts.")
    retry_horizon_seconds: float = Field(default=86400.0, gt=0, description="After this long without success an export is failed.")
    poll_seconds: float = Field(
        default=1.0, gt=0, description="How often the sender looks for due exports; a worker of the same process wakes it at once."
    )
    batch_size: int = Field(default=100, ge=1, description="Objects sent over one association at most.")
    lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Lease of an export being sent; its process renews it every third of this. A sender that died stops renewing: "
        "any sender (of any process) sends the export again once the lease has run out.",
    )
    connection_timeout: float = Field(default=10.0, gt=0, description="Seconds to wait for the TCP connection to a destination.")
    acse_timeout: float = Field(default=30.0, gt=0, description="Seconds to wait for association messages.")
    dimse_timeout: float = Field(default=120.0, gt=0, description="Seconds to wait for a C-STORE response.")
    network_timeout: float = Field(default=120.0, gt=0, description="Seconds of silence before an association is aborted.")
    secondary_capture: bool = Field(
        default=True,
        description="Also write and send the summary page and the key images (secondary capture, contours and legend burned in), which any PACS viewer shows.",
    )

    @field_validator("calling_ae_title")
    @classmethod
    def _calling_ae(cls, value: str) -> str:
        return _check_ae_title(value) if value.strip() else ""


class RetrieveSettings(Section):
    """Processing a study that is already in a PACS, on request: finding, retrieving, then the usual jobs and exports.

    Requests are rows in the database; any node process with `enabled` runs them, one process at a time under a lease.
    """

    enabled: bool = Field(default=True, description="Run inference requests in this process (any number of processes may: each claims its own).")
    poll_seconds: float = Field(default=1.0, gt=0, description="How often a request waiting for instances, jobs or exports is looked at again.")
    lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Lease of a request being worked on, renewed every third of this; a request whose process died is resumed by any process once it has run out.",
    )
    idle_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description=(
            "After the PACS ended the retrieve, how long to wait without a new instance for the rest of those the C-FIND "
            "counted (some PACS answer the final C-MOVE success before their sub-operations are stored) before the series is partial."
        ),
    )
    partial: Literal["process", "fail"] = Field(
        default="process", description="A series that came incomplete: 'process' what came (the request says so), or 'fail' the request."
    )
    modalities: list[str] = Field(default_factory=lambda: ["CT"], description="Modalities of the series a request retrieves; the study's other series are left in the PACS.")
    retry_initial_seconds: float = Field(default=5.0, gt=0, description="First delay after the PACS could not be reached; doubled each attempt.")
    retry_max_seconds: float = Field(default=120.0, gt=0, description="Longest delay between two attempts to reach the PACS.")
    retry_horizon_seconds: float = Field(default=3600.0, gt=0, description="A request whose PACS stays unreachable this long fails.")
    connection_timeout: float = Field(default=10.0, gt=0, description="Seconds to wait for the TCP connection to the PACS.")
    acse_timeout: float = Field(default=30.0, gt=0, description="Seconds to wait for association messages.")
    dimse_timeout: float = Field(default=120.0, gt=0, description="Seconds to wait for each C-FIND/C-MOVE/C-GET response (and WADO-RS data).")


class HttpSettings(Section):
    host: str = Field(default="127.0.0.1", description="Address of the HTTP API and viewer.")
    port: int = Field(default=8080, ge=0, le=65535, description="HTTP port; 0 disables the HTTP server.")
    token: str = Field(default="", description="Bearer token required for everything but health. Empty (and no `tokens`): loopback clients only.")
    tokens: dict[str, str] = Field(
        default_factory=dict,
        description="Named bearer tokens, one per user or system (name = token): each is accepted like `token`, and the access log names it (`token:<name>`; `token` itself is `token:default`).",
    )
    session_hours: float = Field(
        default=12.0,
        gt=0,
        le=24 * 30,
        description=(
            "How long a browser's session lasts: a page exchanges the token once (POST /api/session, token in the "
            "Authorization header) for an HttpOnly, SameSite=Strict cookie (Secure over HTTPS); no token is ever put in a URL."
        ),
    )
    allowed_hosts: list[str] = Field(
        default_factory=lambda: ["localhost", "127.0.0.1", "::1"],
        description=(
            "Host names (and addresses) the server answers to, as in the browser's address bar; requests naming any other "
            "Host get 400, which stops DNS rebinding. The `host` address above is always allowed. \"*\": any (only behind a token)."
        ),
    )
    access_log: str = Field(
        default="access.log",
        description="Audit trail: one JSON line per request (time, client, identity, method, path, status). Relative to node.data_dir; empty: off.",
    )
    tls_cert_file: str | None = Field(default=None, description="Serve HTTPS with this certificate (PEM; with its chain). Needs tls_key_file.")
    tls_key_file: str | None = Field(default=None, description="Private key (PEM) of tls_cert_file.")
    max_stow_mb: int = Field(
        default=1024,
        ge=1,
        description=(
            "Largest STOW-RS request body, in MiB (a request is held in memory while its parts are parsed): a larger "
            "one gets 413 before it is read. Split big studies over several requests, or send them over DICOM."
        ),
    )
    max_frames_per_request: int = Field(
        default=1024,
        ge=1,
        description=(
            "Most frames one WADO-RS frames request may list (after duplicates are folded: '1,1,1' is one frame); "
            "a longer list gets 400. Viewers ask for one frame at a time."
        ),
    )
    max_response_mb: int = Field(
        default=2048,
        ge=1,
        description=(
            "Largest WADO-RS answer, in MiB: a request whose instances, frames or bulk data add up to more gets 413 "
            "naming this setting, before anything is sent (ask for one series or instance at a time)."
        ),
    )
    ohif_dir: Path = Field(
        default=Path(".cache/ohif"),
        description="The prebuilt OHIF viewer served under /ohif/ (`make ohif` installs the pinned version there).",
    )

    @model_validator(mode="after")
    def _tls_and_tokens(self) -> HttpSettings:
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("tls_cert_file and tls_key_file are set together (both or neither)")
        secrets = list(self.bearer_tokens.values())
        if "" in secrets or len(set(secrets)) < len(secrets):
            raise ValueError("tokens must be non-empty and distinct (the access log could not tell who used one)")
        return self

    @property
    def bearer_tokens(self) -> dict[str, str]:
        """Every accepted token by its name (empty: tokenless, loopback-only mode)."""
        named = {"default": self.token} if self.token else {}
        return named | self.tokens

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert_file)


class RetentionSettings(Section):
    """Deleting received series with their jobs, exports and results. Off by default: set a limit to turn it on.

    A series with an open association, a pending or running job or an unsent export is never deleted.
    """

    max_age_days: float = Field(default=0.0, ge=0, description="Delete series last received longer ago than this. 0: keep them.")
    min_free_disk_mb: int = Field(
        default=0,
        ge=0,
        description="While the data dir's disk has less free space than this, delete the oldest series. 0: off. "
        "Set it above dicom.min_free_disk_mb, where the SCP starts refusing instances.",
    )
    interval_seconds: float = Field(default=300.0, gt=0, description="How often retention looks.")

    @property
    def enabled(self) -> bool:
        return bool(self.max_age_days or self.min_free_disk_mb)

    def limits(self) -> str:
        """The limits in words, for the start-up line that tells the operator series will be deleted."""
        limits = [f"series last received more than {self.max_age_days:g} days ago"] if self.max_age_days else []
        limits += [f"the oldest series while less than {self.min_free_disk_mb} MB are free"] if self.min_free_disk_mb else []
        return f"deleting {' and '.join(limits)}, looking every {self.interval_seconds:g} s"


class NodeSettings(Section):
    name: str = Field(
        default_factory=lambda: socket.gethostname()[:64],
        description="Name of this node process; several processes sharing one database need distinct names (it marks the associations "
        "it receives; jobs and exports are owned by <name>/<host>/<pid>).",
    )
    data_dir: Path = Field(default=Path("./var"), description="Where instances, results and the SQLite index live.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Log level.")
    log_json: bool = Field(default=False, description="One JSON object per log line.")


class Config(Section):
    node: NodeSettings = Field(default_factory=NodeSettings)
    dicom: DicomSettings = Field(default_factory=DicomSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    pipelines: dict[str, PipelineConfig] = Field(default_factory=dict)
    models: InferenceSettings = Field(default_factory=InferenceSettings)
    destinations: list[Destination] = Field(default_factory=list)
    export: ExportSettings = Field(default_factory=ExportSettings)
    retrieve: RetrieveSettings = Field(default_factory=RetrieveSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)

    @model_validator(mode="before")
    @classmethod
    def _pipeline_tables(cls, data: Any) -> Any:
        """Every registered pipeline has a `[pipelines.NAME]` table, its `processing` read as that pipeline's own
        settings (defaults where absent); a table for a pipeline the node does not have is an error."""
        if not isinstance(data, dict):
            return data
        tables = dict(data.get("pipelines") or {})
        unknown = sorted(set(tables) - set(PIPELINES))
        if unknown:
            raise ValueError(f"pipelines: unknown pipeline(s) {unknown} (pipelines: {', '.join(PIPELINES)})")
        for name, pipeline in PIPELINES.items():
            table = tables.get(name, {})
            table = table.model_dump() if isinstance(table, PipelineConfig) and not isinstance(table.processing, pipeline.settings_type) else table
            if isinstance(table, dict):
                processing = table.get("processing", {})
                if not isinstance(processing, pipeline.settings_type):
                    raw = processing.model_dump() if isinstance(processing, BaseModel) else processing
                    table = {**table, "processing": pipeline.settings_type.model_validate(raw)}
            tables[name] = table
        return {**data, "pipelines": tables}

    @model_validator(mode="after")
    def _model_roles(self) -> Config:
        """Each `[models.ROLE]` table is valid over its role's defaults; a role no pipeline calls is a typo."""
        roles = {role: pipeline for pipeline in PIPELINES.values() for role in pipeline.model_roles}
        unknown = sorted(set(self.models.roles) - set(roles))
        if unknown:
            raise ValueError(f"models: no pipeline calls the model role(s) {unknown} (roles: {', '.join(roles)})")
        for role, pipeline in roles.items():
            self.models.model(role, pipeline.default_model(role))
        return self

    @model_validator(mode="after")
    def _default_calling_ae(self) -> Config:
        """One identity: the node calls out under the AE title it answers to, unless told otherwise."""
        if not self.export.calling_ae_title:
            self.export.calling_ae_title = self.dicom.called_aes[0].ae_title
        return self

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{(self.node.data_dir / 'index.sqlite3').resolve()}"

    def job_sop_classes(self) -> dict[str, frozenset[str]]:
        """Per pipeline, the SOP classes whose instances start a job: what its selection takes, less `jobs.ignore_sop_classes`."""
        ignored = set(self.jobs.ignore_sop_classes)
        return {name: frozenset(set(pipeline.processing.selection.sop_classes) - ignored) for name, pipeline in self.pipelines.items()}

    def destination(self, name: str) -> Destination:
        for dest in self.destinations:
            if dest.name == name:
                return dest
        raise KeyError(name)

    @property
    def sources(self) -> list[Destination]:
        """The configured peers studies can be retrieved from (those with a retrieve method)."""
        return [dest for dest in self.destinations if dest.retrieve_method is not None]

    def add_destination(self, dest: Destination) -> None:
        """Add a destination (from `serve --export-to`) and route every pipeline's results to it.

        The same name with the same address is accepted once; with another
        address it is an error, because results would go to two places under one name.
        """
        try:
            known = self.destination(dest.name)
        except KeyError:
            self.destinations.append(dest)
        else:
            if (known.ae_title, known.host, known.port) != (dest.ae_title, dest.host, dest.port):
                raise ConfigError(f"destination {dest.name!r} is already configured as {known.ae_title}@{known.host}:{known.port}")
        for pipeline in self.pipelines.values():
            if dest.name not in pipeline.destinations:
                pipeline.destinations.append(dest.name)


def _env_variables(environ: dict[str, str]) -> dict[tuple[str, ...], str]:
    """The settings' paths the environment sets, each with its variable's name (errors name the variable)."""
    return {
        tuple(part.lower() for part in key[len(ENV_PREFIX):].split("__")): key
        for key in environ
        if key.startswith(ENV_PREFIX) and key != ENV_PREFIX + "CONFIG"
    }


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, key in _env_variables(environ).items():
        raw = environ[key]
        value: Any = raw
        if raw[:1] in "[{":
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{key}: not valid JSON: {exc}") from exc
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return tree


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _describe(error: ValidationError, variables: dict[tuple[str, ...], str]) -> str:
    """Each problem under the name the user wrote: the TOML key, or the environment variable that set it."""
    lines = []
    for item in error.errors():
        loc = tuple(str(part) for part in item["loc"])
        # The variable that set this value, or the table around it (DICOM_NODE_DESTINATIONS='[...]').
        variable = next((variables[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in variables), None)
        unknown = [name for path, name in variables.items() if path[: len(loc)] == loc] if item["type"] == "extra_forbidden" else []
        if unknown:  # a typo in the variable's name: the setting (or the section) it names does not exist
            section = ".".join(loc[:-1]) or "the configuration"
            lines.append(f"environment variable {', '.join(unknown)}: {section} has no setting {loc[-1]!r} (a typo?)")
        elif variable is not None:
            lines.append(f"environment variable {variable} ({'.'.join(loc)}): {item['msg']} (got {item.get('input')!r})")
        else:
            lines.append(f"{'.'.join(loc)}: {item['msg']} (got {item.get('input')!r})")
    return "; ".join(lines)


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None) -> Config:
    """Build the configuration from file, environment and flags, or raise ConfigError naming the bad key."""
    environ = dict(os.environ) if environ is None else environ
    if path is None and environ.get(ENV_PREFIX + "CONFIG"):
        path = Path(environ[ENV_PREFIX + "CONFIG"])
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    data = _merge(data, _env_overrides(environ))
    data = _merge(data, overrides or {})
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration: {_describe(exc, _env_variables(environ))}") from exc
    unknown = {name for p in config.pipelines.values() for name in p.destinations} - {d.name for d in config.destinations}
    if unknown:
        raise ConfigError(f"pipelines.*.destinations: unknown destination(s) {sorted(unknown)}")
    return config


def _toml_value(value: Any) -> str:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (str, Path)):
        return json.dumps(str(value))
    if value is None:
        return '""'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):  # an unset optional key is left out: TOML has no null
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items() if v is not None) + " }"
    raise TypeError(f"cannot render {type(value).__name__} as TOML")


def _render_table(name: str, model: BaseModel, lines: list[str], header: str = "", example: bool = True) -> None:
    """One [table] (or `header`, e.g. [[destinations]]): every field with its description as a comment; nested
    models become sub-tables. `example`: the values that depend on the machine or on other keys as placeholders."""
    nested: list[tuple[str, BaseModel]] = []
    lines.append(f"\n{header or f'[{name}]'}")
    for key, info in type(model).model_fields.items():
        value = getattr(model, key)
        if isinstance(value, BaseModel):
            nested.append((f"{name}.{key}", value))
            continue
        if isinstance(value, dict) and value and all(isinstance(v, BaseModel) for v in value.values()):
            nested.extend((f"{name}.{k}", v) for k, v in value.items())
            continue
        if info.description:
            lines.extend(f"# {line}" for line in info.description.splitlines())
        if example and key == "name" and isinstance(model, NodeSettings):
            lines.append(f"# {key} = \"<host name>\"")
        elif example and key == "calling_ae_title" and isinstance(model, ExportSettings):
            lines.append(f"# {key} = \"<first called AE>\"")
        elif value is None:
            lines.append(f"# {key} =")
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for sub_name, sub_model in nested:
        _render_table(sub_name, sub_model, lines, example=example)


def example_toml() -> str:
    """The documented default configuration (config/dicom-node.toml is exactly this; `make config` rewrites it)."""
    lines = [
        "# dicom-node configuration: every key with its default and meaning.",
        "# Generated from dicom_node/config.py (`make config`); a test checks they agree.",
        "# Override any key with DICOM_NODE_<SECTION>__<KEY> (lists/tables as JSON), e.g. DICOM_NODE_DICOM__PORT=11113.",
        "#",
        "# Destinations results are sent to (one [[destinations]] table each), e.g.:",
        "# [[destinations]]",
        '# name = "PACS"',
        '# ae_title = "ORTHANC"',
        '# host = "pacs.example.org"',
        "# port = 4242",
        "# and in [pipelines.covid19_ct]: destinations = [\"PACS\"]",
        "# Over TLS, add to the destination:",
        "# tls = true",
        '# tls_ca_file = "/etc/dicom-node/pacs-ca.pem"        # CA that signed the PACS certificate',
        '# tls_cert_file = "/etc/dicom-node/node.pem"         # our client certificate, if the PACS asks for one',
        '# tls_key_file = "/etc/dicom-node/node.key"',
        "# A destination that implements IHE IOCM (it hides objects a Key Object Selection \"Rejected for Quality Reasons\"",
        "# lists) gets notes withdrawing results that newer ones replace: rejection_notes = true",
        "# A destination that is also a source of studies processed on request (`dicom-node process`, /api/inference):",
        '# retrieve_method = "C-MOVE"                           # or "C-GET"; or "WADO-RS" with wado_rs_url = "http://pacs:8042/dicom-web"',
        "#",
        "# A research or cloud destination gets the source series and the results de-identified (PS3.15 Annex E,",
        "# docs/deidentification.md): add to the destination",
        "# include_source = true",
        "# [destinations.deidentification]",
        "# enabled = true",
        "# retain_longitudinal_modified_dates = true",
        "# max_date_shift_days = 3650",
        "# retain_patient_characteristics = false",
        "# retain_device_identity = false",
        "# retain_institution_identity = false",
        "# retain_uids = false",
        "# retain_safe_private = false",
        "# safe_private_creators = []",
        "# clean_descriptors = true",
        "# clean_structured_content = true",
        "# pixels_cleaned = false",
        "#",
        "# Allowed sources (empty: any), e.g. in [dicom]:",
        '# allowed_sources = [{ ae_title = "CT_SCANNER_1" }, { ae_title = "PACS", host = "10.0.0.5" }]',
        '# (a source may name a network, host = "10.0.0.0/24", the called AEs it may use, called_aes = ["CLARA"], and',
        "# whether it may query and retrieve, query_retrieve = true)",
        "#",
        "# Called AEs, allowed sources and destinations (with the pipelines' destinations) seed the node's database: each",
        "# start adds those it has never had; afterwards the database is the truth and they change without a restart",
        "# (`dicom-node ae|source|destination ...`, /api/config/...). `dicom-node config export` writes them back as TOML.",
        "# A source that may also query and retrieve (C-FIND, C-MOVE, C-GET) what the node holds and its results:",
        '# allowed_sources = [{ ae_title = "WORKSTATION", host = "10.0.0.7", query_retrieve = true }]',
    ]
    defaults = Config()
    for key in Config.model_fields:
        value = getattr(defaults, key)
        if isinstance(value, InferenceSettings):
            lines.extend(["\n[models]", *(f"# {line}" for line in (InferenceSettings.model_fields["url"].description or "").splitlines())])
            lines.append(f"url = {_toml_value(value.url)}")
            for role, pipeline in {role: p for p in PIPELINES.values() for role in p.model_roles}.items():
                _render_table(f"models.{role}", value.model(role, pipeline.default_model(role)).model_copy(update={"url": None}), lines)
        elif isinstance(value, BaseModel):
            _render_table(key, value, lines)
        elif isinstance(value, dict):
            for name, sub in value.items():
                _render_table(f"{key}.{name}", sub, lines)
    return "\n".join(lines).lstrip("\n") + "\n"


def config_toml(config: Config, heading: list[str]) -> str:
    """`config` as a TOML file that loads back into it (`dicom-node config export`), every key with its meaning."""
    lines = [f"# {line}" for line in heading]
    for key in Config.model_fields:
        value = getattr(config, key)
        if isinstance(value, BaseModel):
            _render_table(key, value, lines, example=False)
        elif isinstance(value, dict):
            for name, sub in value.items():
                _render_table(f"{key}.{name}", sub, lines, example=False)
    for dest in config.destinations:
        _render_table("destinations", dest, lines, header="[[destinations]]", example=False)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(example_toml(), end="")
