// The list of recent series with their newest job and its exports, refreshed every few seconds.
"use strict";

const REFRESH_MS = 5000;

function exportSummary(exports) {
  const parts = Object.entries(exports || {}).map(([state, count]) => el("span", { class: `state state-${state}` }, `${count} ${state}`));
  return parts.length ? el("span", {}, ...parts) : el("span", { class: "muted" }, "none");
}

// Whether the node serves OHIF: its app configuration answers only when the viewer is installed (http.ohif_dir).
const ohifServed = fetch("/ohif/app-config.js").then((answer) => answer.ok, () => false);

// The study in OHIF (served by the node under /ohif/, reading /dicomweb); OHIF takes the token from `?token=`.
function ohifLink(series) {
  const query = new URLSearchParams({ StudyInstanceUIDs: series.study_instance_uid });
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) query.set("token", token);
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

async function refresh() {
  const status = document.getElementById("status");
  try {
    const rows = await apiJson("/api/series?limit=100");
    const ohif = await ohifServed;
    document.querySelector("#series-table tbody").replaceChildren(...rows.map((series) => seriesRow(series, ohif)));
    document.getElementById("empty").hidden = rows.length > 0;
    status.textContent = `updated ${when(new Date().toISOString())}`;
  } catch (error) {
    status.textContent = error instanceof Unauthorized ? error.message : `cannot load: ${error.message}`;
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
