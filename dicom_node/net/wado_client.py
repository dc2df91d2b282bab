"""WADO-RS as a client: a series (or some of its instances) from a DICOMweb server, each part handed to a store function.

The parts are PS3.10 files, asked for in whatever transfer syntax the server
holds them (`transfer-syntax=*`), so nothing is transcoded on either side and
the node stores what the PACS has, as a C-MOVE would have brought it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import httpx

from dicom_node.config import Destination
from dicom_node.net.multipart import BadMultipart, media_type_parameters, split_parts
from dicom_node.net.multipart import Part10, read_part10
from dicom_node.net.retrieve import RemoteSeries, RetrieveRefused, RetrieveResult
from dicom_node.net.scu import PeerUnavailable

ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def _auth(source: Destination) -> tuple[dict[str, str], httpx.BasicAuth | None]:
    if source.wado_rs_token:
        return {"Authorization": f"Bearer {source.wado_rs_token}"}, None
    if source.wado_rs_user:
        return {}, httpx.BasicAuth(source.wado_rs_user, source.wado_rs_password)
    return {}, None


def fetch_series(
    source: Destination, series: RemoteSeries, missing: Sequence[str] | None, timeout: float, store: Callable[[Part10], bool]
) -> RetrieveResult:
    """GET the series (`missing` None) or each missing instance; `store` says whether it kept a part."""
    base = f"{source.wado_rs_url.rstrip('/')}/studies/{series.study_instance_uid}/series/{series.series_instance_uid}"
    urls = [base] if missing is None else [f"{base}/instances/{uid}" for uid in missing]
    headers, auth = _auth(source)
    completed = failed = 0
    with httpx.Client(timeout=timeout, headers={"Accept": ACCEPT, **headers}, auth=auth) as client:
        for url in urls:
            for part in _parts(client, url):
                if store(part):
                    completed += 1
                else:
                    failed += 1
    return RetrieveResult(0xB000 if failed else 0x0000, completed, failed, 0)


def _parts(client: httpx.Client, url: str) -> list[Part10]:
    try:
        response = client.get(url)
    except httpx.HTTPError as exc:
        raise PeerUnavailable(f"WADO-RS {url}: {type(exc).__name__}: {exc}") from None
    if response.status_code >= 500 or response.status_code in (408, 429):
        raise PeerUnavailable(f"WADO-RS {url}: HTTP {response.status_code} (the server may answer later)")
    if response.status_code in (401, 403):
        raise RetrieveRefused(f"WADO-RS {url}: HTTP {response.status_code}: check wado_rs_token or wado_rs_user/wado_rs_password of the source")
    if response.status_code != 200:
        raise RetrieveRefused(f"WADO-RS {url}: HTTP {response.status_code}: {response.text[:200]}")
    media, params = media_type_parameters(response.headers.get("content-type", ""))
    try:
        if media != "multipart/related":
            raise BadMultipart(f"the answer is {media or 'untyped'}, not multipart/related")
        return [read_part10(part.body, number) for number, part in enumerate(split_parts(response.content, params.get("boundary", "")), 1)]
    except BadMultipart as exc:
        raise RetrieveRefused(f"WADO-RS {url}: {exc}") from None
