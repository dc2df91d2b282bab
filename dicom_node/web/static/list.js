// The list of recent series with their newest job and its exports, refreshed every few seconds.
"use strict";

const REFRESH_MS = 5000;

function exportSummary(exports) {
  const parts = Object.entries(exports || {}).map(([state, count]) => el("span", { class: `state state-${state}` }, `${count} ${state}`));
  return parts.length ? el("span", {}, ...parts) : el("span", { class: "muted" }, "none");
}

// Whether the node serves OHIF: its app configuration answers only when the viewer is installed (http.ohif_dir).
const ohifServed = fetch("/ohif/app-config.js").then((answer) => answer.ok, () => false);

// The study in OHIF (served by the node under /ohif/, reading /dicomweb with the browser's session cookie).
function ohifLink(series) {
  const query = new URLSearchParams({ StudyInstanceUIDs: series.study_instance_uid });
  return el("a", { class: "ohif", href: `/ohif/viewer?${query}` }, "OHIF");
}

function seriesRow(series, ohif) {
  const job = series.job;
  const label = [series.series_number ?? "", series.description].filter(Boolean).join(" ") || series.series_instance_uid;
  const jobCell = el("td", { class: "job" }, stateBadge(job && job.state));
  if (job && job.reason) jobCell.append(el("div", { class: "reason" }, job.reason));
  return el("tr", { "data-series-id": series.id },
    el("td", {}, when(series.last_received_at)),
    el("td", {}, `${series.patient_name || ""} ${series.patient_id ? "(" + series.patient_id + ")" : ""}`),
    el("td", {}, dicomDate(series.study_date)),
    el("td", { title: series.series_instance_uid }, label),
    el("td", {}, series.modality),
    el("td", { class: "num" }, series.instance_count),
    jobCell,
    el("td", {}, job ? exportSummary(job.exports) : ""),
    // Only a done job has images and results to view; the job cell already says why the others have none.
    el("td", {}, job && job.state === "done" ? el("a", { href: `/series/${series.id}` }, "view") : "", " ", ohif ? ohifLink(series) : ""));
}

// A request's query in a few words: the study (and series) UID, the accession number, or the patient and dates.
function askedFor(inputs) {
  if (inputs.study_instance_uid) return `study ${inputs.study_instance_uid}${inputs.series_instance_uid ? " series " + inputs.series_instance_uid : ""}`;
  if (inputs.accession_number) return `accession ${inputs.accession_number}`;
  const dates = inputs.study_date_from || inputs.study_date_to ? ` ${inputs.study_date_from || "…"}–${inputs.study_date_to || "…"}` : "";
  return `patient ${inputs.patient_id}${dates}`;
}

function requestRow(request) {
  return el("tr", {},
    el("td", {}, when(request.createdAt)),
    el("td", {}, el("a", { href: `/api/inference/${encodeURIComponent(request.transactionID)}` }, request.transactionID)),
    el("td", {}, askedFor(request.inputs)),
    el("td", {}, request.source),
    el("td", {}, stateBadge(request.state), request.partial ? el("span", { class: "muted" }, " partial") : ""),
    el("td", { class: "num" }, request.errors),
    el("td", {}, request.finishedAt ? when(request.finishedAt) : ""));
}

async function refreshRequests() {
  const rows = await apiJson("/api/inference?limit=50");
  document.querySelector("#request-table tbody").replaceChildren(...rows.map(requestRow));
  document.getElementById("no-requests").hidden = rows.length > 0;
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const rows = await apiJson("/api/series?limit=100");
    const ohif = await ohifServed;
    document.querySelector("#series-table tbody").replaceChildren(...rows.map((series) => seriesRow(series, ohif)));
    document.getElementById("empty").hidden = rows.length > 0;
    await refreshRequests();
    status.textContent = `updated ${when(new Date().toISOString())}`;
  } catch (error) {
    status.textContent = error instanceof Unauthorized ? error.message : `cannot load: ${error.message}`;
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
