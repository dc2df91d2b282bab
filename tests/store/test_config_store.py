"""The run-time configuration in the database: seeded from the file, changed with rules, applied in place, audited."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.config import Config, load_config
from dicom_node.config_entities import InvalidEntity, parse
from dicom_node.live_config import LiveConfig, config_store
from dicom_node.store.config_store import ConfigConflict, NotConfigured, PendingExports
from dicom_node.store.db import make_engine, make_sessionmaker, upgrade
from dicom_node.store.models import Export, Job, Patient, Series, Study
from dicom_node.store.wakeups import Wakeups


def file_config(tmp_path: Path, **sections: object) -> Config:
    base = {
        "node": {"data_dir": str(tmp_path / "var")},
        "dicom": {"called_aes": [{"ae_title": "CLARA"}], "allowed_sources": [{"ae_title": "CT1"}, {"ae_title": "PACS", "host": "10.0.0.0/24"}]},
        "destinations": [{"name": "PACS", "ae_title": "ORTHANC", "host": "127.0.0.1", "port": 4242}],
        "pipelines": {"covid19_ct": {"destinations": ["PACS"]}},
    }
    return load_config(None, base | sections, environ={})


@pytest.fixture
def config(tmp_path: Path) -> Config:
    config = file_config(tmp_path)
    (tmp_path / "var").mkdir()
    upgrade(config.database_url)
    return config


def store_for(config: Config, wakeups: Wakeups | None = None):  # type: ignore[no-untyped-def]
    return config_store(config, make_sessionmaker(make_engine(config.database_url)), wakeups)


def audit_lines(config: Config) -> list[dict[str, object]]:
    path = Path(config.node.data_dir) / config.http.access_log
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_file_seeds_once_and_never_undoes_a_change(config: Config, tmp_path: Path) -> None:
    store = store_for(config)
    assert [change.name for change in store.seed(config, "configuration file")] == ["CLARA", "CT1", "PACS@10.0.0.0/24", "PACS"]
    assert store.seed(config, "configuration file") == []  # the second start adds nothing
    store.remove("source", "CT1", "cli:alice")
    store.update("destination", "PACS", parse("destination", {"name": "PACS", "ae_title": "PACS2", "host": "pacs", "port": 104}, config), "cli:alice")
    later = file_config(tmp_path, destinations=[
        {"name": "PACS", "ae_title": "ORTHANC", "host": "127.0.0.1", "port": 4242},
        {"name": "NEW", "ae_title": "NEW", "host": "127.0.0.1", "port": 11113},
    ], pipelines={"covid19_ct": {"destinations": ["PACS", "NEW"]}})
    assert [change.name for change in store.seed(later, "configuration file")] == ["NEW"]  # only what the database never had
    LiveConfig(later, store).refresh()
    assert [source.name for source in later.dicom.allowed_sources] == ["PACS@10.0.0.0/24"]  # CT1 stays removed
    assert later.destination("PACS").ae_title == "PACS2" and later.pipelines["covid19_ct"].destinations == ["NEW"]


def test_rules_name_the_field_and_refuse_duplicates_and_the_last_of_a_kind(config: Config) -> None:
    store = store_for(config)
    store.seed(config, "configuration file")
    with pytest.raises(InvalidEntity) as invalid:
        parse("ae", {"ae_title": "A\\B"}, config)
    assert invalid.value.problems[0]["field"] == "ae_title" and "backslash" in invalid.value.problems[0]["rule"]
    for title in ("                ", "SEVENTEEN_CHARS_X", "TAB\tHERE"):
        with pytest.raises(InvalidEntity, match="ae_title: an AE title"):
            parse("source", {"ae_title": title}, config)
    with pytest.raises(InvalidEntity, match="port: Input should be less than or equal to 65535"):
        parse("destination", {"name": "X", "ae_title": "X", "host": "x", "port": 70000}, config)
    with pytest.raises(InvalidEntity, match="host: a host is an IP address or a host name"):
        parse("destination", {"name": "X", "ae_title": "X", "host": "pacs:4242", "port": 104}, config)
    with pytest.raises(InvalidEntity, match="pipelines: configured pipelines only"):
        parse("destination", {"name": "X", "ae_title": "X", "host": "x", "port": 104, "pipelines": ["mri"]}, config)
    with pytest.raises(ConfigConflict, match="destination PACS exists already"):
        store.add("destination", parse("destination", {"name": "PACS", "ae_title": "X", "host": "x", "port": 104}, config), "t")
    with pytest.raises(ConfigConflict, match="called AE CLARA is the last one"):
        store.remove("ae", "CLARA", "t")
    store.remove("source", "CT1", "t")
    with pytest.raises(ConfigConflict, match="lets any calling AE send"):
        store.remove("source", "PACS@10.0.0.0/24", "t")
    with pytest.raises(NotConfigured):
        store.remove("source", "CT1", "t")


def add_pending_exports(sessions: sessionmaker[Session], destination: str, count: int) -> None:
    """A done job with `count` results still to send to `destination`."""
    with sessions.begin() as session:
        series = Series(study=Study(patient=Patient(patient_id="P", issuer=""), study_instance_uid="1.2"), series_instance_uid="1.2.3")
        job = Job(series=series, state="done", pipeline="covid19_ct")
        session.add(job)
        session.flush()
        session.add_all([
            Export(job_fk=job.id, destination=destination, sop_instance_uid=f"1.2.3.{k}", sop_class_uid="1.2", path="x", state="pending")
            for k in range(count)
        ])


def test_removing_a_destination_with_pending_exports_needs_force_and_fails_them(config: Config) -> None:
    store = store_for(config)
    store.seed(config, "configuration file")
    sessions = make_sessionmaker(make_engine(config.database_url))
    add_pending_exports(sessions, "PACS", 3)
    with pytest.raises(PendingExports, match="PACS has 3 pending export"):
        store.remove("destination", "PACS", "token:admin")
    store.remove("destination", "PACS", "token:admin", force=True)
    with sessions() as session:
        assert {(e.state, e.last_error) for e in session.query(Export)} == {("failed", "destination PACS was removed by token:admin")}


def test_every_change_is_audited_with_who_before_and_after_secrets_redacted(config: Config) -> None:
    store = store_for(config)
    store.seed(config, "configuration file")
    wado = {"name": "WEB", "ae_title": "WEB", "host": "web", "port": 104, "retrieve_method": "WADO-RS", "wado_rs_url": "http://web/dicom-web",
            "wado_rs_token": "s3cret"}
    store.add("destination", parse("destination", wado, config), "token:alice")
    store.update("destination", "WEB", parse("destination", wado | {"port": 105}, config), "cli:bob")
    entries = [entry for entry in audit_lines(config) if entry["event"] == "config"]
    assert [(e["identity"], e["action"], e["kind"], e["name"]) for e in entries][-2:] == [
        ("token:alice", "add", "destination", "WEB"), ("cli:bob", "update", "destination", "WEB")]
    last = entries[-1]
    assert last["before"]["port"] == 104 and last["after"]["port"] == 105  # type: ignore[index]
    assert last["after"]["wado_rs_token"] == "[redacted]" and "s3cret" not in json.dumps(entries)  # type: ignore[index]
    assert entries[0]["identity"] == "configuration file" and entries[0]["before"] is None


def test_another_process_change_reaches_a_watching_config_within_a_second(config: Config, tmp_path: Path) -> None:
    writer = store_for(config)  # the CLI: another engine, no shared wake-ups (SQLite)
    writer.seed(config, "configuration file")
    watched = file_config(tmp_path)
    live = LiveConfig(watched, store_for(watched, Wakeups()))
    live.refresh()
    changed = threading.Event()
    live.on_change(changed.set)
    stopping = threading.Event()
    watcher = threading.Thread(target=live.watch, args=(stopping,))
    watcher.start()
    try:
        started = time.monotonic()
        writer.add("source", parse("source", {"ae_title": "NEWCT", "called_aes": ["CLARA"]}, config), "cli:alice")
        assert changed.wait(1.0), "not applied within a second"
        assert time.monotonic() - started < 1.0
        [new] = [source for source in watched.dicom.allowed_sources if source.ae_title == "NEWCT"]
        assert new.admits("NEWCT", "127.0.0.1", "CLARA") and not new.admits("NEWCT", "127.0.0.1", "OTHER")
    finally:
        stopping.set()
        watcher.join()
