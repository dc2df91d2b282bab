// One series: its newest job's headline (RSNA category, zone-based score, PO, fitness flags), slices with the masks
// its result manifest lists, the classifier's scores (a trained model's probabilities; the baseline's index, never
// shown as a probability) and the measurements. A series several pipelines processed links each one's newest job
// (?job=ID shows that one).
"use strict";

const seriesId = Number(location.pathname.split("/").filter(Boolean).pop());
// Digits as dicom_node/output/display.py's PRECISION (mL 1, % 2; probabilities as % with 1): the API's values are
// stored at that precision, so the page writes them as the log, the CLI and the summary page do.
const MEASUREMENTS = [
  ["lung_volume_ml", "Lung volume (mL)", 1],
  ["opacity_volume_ml", "Opacity volume (mL)", 1],
  ["opacity_percent", "Percentage of opacity (PO, %)", 2],
  ["high_opacity_percent", "Percentage of high opacity (PHO, %)", 2],
];

// One image per plane: while a slice loads, further slider moves only remember the latest position.
// Axial slices are scrolled from the head (slider at the left) to the feet, as PACS viewers show a head-first
// series, and labelled with their patient z; `positions` (mm, one per API slice index) says which end is the head.
class PlaneView {
  constructor(jobId, plane, count, positions) {
    this.jobId = jobId;
    this.plane = plane;
    this.img = document.getElementById(`${plane}-img`);
    this.slider = document.getElementById(`${plane}-slider`);
    this.label = document.getElementById(`${plane}-index`);
    this.count = count;
    this.positions = positions || null;
    // The API counts slices along the volume's z; reversed when that runs from the feet to the head.
    this.reversed = Boolean(this.positions && count > 1 && this.positions[count - 1] > this.positions[0]);
    this.wanted = Math.floor(count / 2);
    this.loading = false;
    this.slider.max = count - 1;
    this.slider.value = this.wanted;
    this.slider.addEventListener("input", () => this.show(Number(this.slider.value)));
  }

  // The API's slice index shown at slider position `position`.
  index(position) {
    return this.reversed ? this.count - 1 - position : position;
  }

  show(position) {
    this.wanted = position;
    const where = this.positions ? `, z ${this.positions[this.index(position)].toFixed(1)} mm` : "";
    this.label.textContent = `${position + 1} / ${this.count}${where}`;
    if (!this.loading) this.load();
  }

  async load() {
    this.loading = true;
    const position = this.wanted;
    const index = this.index(position);
    const overlay = document.getElementById("overlay").checked ? 1 : 0;
    try {
      const blob = await (await api(`/api/jobs/${this.jobId}/slices/${this.plane}/${index}.png?overlay=${overlay}`)).blob();
      const previous = this.img.src;
      this.img.src = URL.createObjectURL(blob);
      this.img.dataset.index = index;
      this.img.dataset.overlay = overlay;
      if (previous.startsWith("blob:")) URL.revokeObjectURL(previous);
    } catch (error) {
      document.getElementById("status").textContent = `slice: ${error.message}`;
    }
    this.loading = false;
    if (this.wanted !== position || document.getElementById("overlay").checked !== Boolean(overlay)) this.load();
  }
}

function fmt(value, digits) {
  return typeof value === "number" ? value.toFixed(digits) : "";
}

// The headline as the worker stored it; jobs done before it existed have none and show no section.
function showHeadline(result) {
  const headline = result && result.headline;
  if (!headline) return;
  const marked = headline.marked ? " (!)" : "";
  if ("category_title" in headline) {  // the COVID-19 pipeline's headline: RSNA category, zone-based score, PO
    document.getElementById("category").textContent = `${headline.category_title || "not assessed"}${marked}`;
    const score = headline.zone_based_severity_score === null ? "" : `zone-based score ${headline.zone_based_severity_score}/30, `;
    document.getElementById("score").textContent = `${score}PO ${fmt(headline.opacity_percent, 2)}%${marked}`;
  } else {  // any other pipeline's: its one line
    document.getElementById("headline-title").textContent = result.pipeline || "Result";
    document.getElementById("category").textContent = `${headline.text}${marked}`;
  }
  const flags = result.fitness_flags || [];
  const fitness = document.getElementById("fitness");
  fitness.className = flags.length ? "banner" : "muted";
  fitness.replaceChildren(...(flags.length
    ? ["(!) Outside the validated range, the figures may be wrong:", ...flags.map((f) => el("div", { "data-code": f.code }, `${f.title}: ${f.reason}`))]
    : ["Scan within the validated range (no fitness flag)."]));
  const criteria = (result.category && result.category.criteria) || [];
  document.getElementById("criteria").replaceChildren(...criteria.map((c) =>
    el("li", { "data-code": c.code, "data-met": c.met ? "1" : "0" }, `${c.met ? "met" : "not met"}: ${c.title} (${c.detail})`)));
  document.getElementById("headline").hidden = false;
}

// A trained model's probabilities as percentages; the baseline's index as a number, never as a percentage.
function showClassification(classification) {
  if (!classification) return;
  document.getElementById("baseline-banner").hidden = !classification.baseline;
  document.getElementById("model").textContent =
    `${classification.model_name} ${classification.model_version}${classification.baseline ? " (baseline: index, not a probability)" : ""}`;
  const scores = classification.scores || classification.probabilities;  // jobs done before the rename
  const rows = classification.class_names.map((name, i) => {
    const p = scores[i];
    return el("tr", {},
      el("th", {}, classification.baseline ? `${name} index` : `p(${name})`),
      el("td", { class: "num" }, classification.baseline ? p.toFixed(3) : `${(100 * p).toFixed(1)} %`),
      el("td", { class: "bar" }, el("span", { style: `width:${(100 * p).toFixed(1)}%` })));
  });
  document.querySelector("#scores tbody").replaceChildren(...rows);
}

function showMeasurements(measurements) {
  if (!measurements) return;
  const rows = MEASUREMENTS.filter(([key]) => measurements[key]).map(([key, label, digits]) => {
    const m = measurements[key];
    return el("tr", { "data-key": key }, el("th", {}, label),
      el("td", { class: "num" }, fmt(m.right, digits)), el("td", { class: "num" }, fmt(m.left, digits)), el("td", { class: "num" }, fmt(m.total, digits)));
  });
  document.querySelector("#measurements tbody").replaceChildren(...rows);
}

function showSteps(steps) {
  const rows = Object.entries(steps || {}).map(([step, seconds]) => el("tr", {}, el("th", {}, step), el("td", { class: "num" }, `${Number(seconds).toFixed(2)} s`)));
  document.querySelector("#steps tbody").replaceChildren(...rows);
}

function showLegend(overlays) {
  const names = { right_lung: "right lung", left_lung: "left lung", opacity: "opacity" };
  const items = Object.entries(overlays).map(([key, { rgb }]) =>
    el("span", { class: "legend-item" }, el("span", { class: "swatch", style: `background:rgb(${rgb.join(",")})` }), names[key] || key));
  document.getElementById("legend").replaceChildren(...items);
}

// Each other pipeline's newest job of the series, as a link to this page showing it.
function showPipelines(jobs, shown) {
  const newest = new Map();
  for (const j of jobs) if (j.pipeline !== shown.pipeline && !newest.has(j.pipeline)) newest.set(j.pipeline, j);
  if (!newest.size) return;
  const links = [...newest.values()].map((j) => el("a", { href: `?job=${j.id}` }, `${j.pipeline} (job ${j.id}, ${j.state})`));
  const line = document.getElementById("pipelines");
  line.replaceChildren(`${shown.pipeline}; also: `, ...links.flatMap((a, i) => (i ? [", ", a] : [a])));
  line.hidden = false;
}

function showJob(job) {
  document.getElementById("job-state").replaceChildren(el("span", {}, `job ${job.id} `), stateBadge(job.state));
  document.getElementById("job-reason").textContent = job.reason || "";
  const files = (job.result && job.result.files) || {};
  const links = ["json", "csv"].filter((kind) => files[kind]).map((kind) => {
    const link = el("a", { href: "#" }, kind.toUpperCase());
    link.addEventListener("click", (event) => { event.preventDefault(); download(`/api/jobs/${job.id}/result.${kind}`, `job-${job.id}-result.${kind}`); });
    return link;
  });
  if (links.length) document.getElementById("downloads").replaceChildren("results: ", ...links.flatMap((a, i) => (i ? [" ", a] : [a])));
  showHeadline(job.result);
  showClassification(job.result && job.result.classification);
  showMeasurements(job.result && job.result.measurements);
  showSteps(job.steps);
}

async function showViewer(job) {
  const info = await apiJson(`/api/jobs/${job.id}/volume`);
  const overlay = document.getElementById("overlay");
  overlay.checked = info.masks;
  overlay.disabled = !info.masks;
  showLegend(info.overlays);
  for (const [plane, edges] of Object.entries(info.edges)) {
    const frame = document.getElementById(`${plane}-frame`);
    frame.append(...Object.entries(edges).map(([edge, side]) => el("span", { class: `edge edge-${edge}` }, side)));
  }
  document.getElementById("viewer").hidden = false;
  const positions = info.positions_mm || {};
  const views = ["axial", "coronal"].map((plane) => new PlaneView(job.id, plane, info.slices[plane], positions[plane]));
  overlay.addEventListener("change", () => views.forEach((view) => view.show(view.wanted)));
  views.forEach((view) => view.show(view.wanted));
}

async function main() {
  const status = document.getElementById("status");
  try {
    const series = await apiJson(`/api/series/${seriesId}`);
    document.getElementById("title").textContent = `${series.patient_name || series.patient_id || "Series"}: ${series.description || series.series_instance_uid}`;
    document.getElementById("subtitle").textContent =
      `${series.modality} series ${series.series_number ?? ""}, ${series.instance_count} instances, study ${series.study_instance_uid}`;
    // The job asked for; else the newest job that finished with results; else the newest job, to say what is happening.
    const asked = Number(new URLSearchParams(location.search).get("job"));
    const job = series.jobs.find((j) => j.id === asked) || series.jobs.find((j) => j.state === "done") || series.jobs[0];
    showPipelines(series.jobs, job);
    if (!job) {
      status.textContent = "no job for this series yet";
      return;
    }
    showJob(job);
    if (job.state !== "done") {
      status.textContent = `nothing to view: the job is ${job.state}${job.reason ? " (" + job.reason + ")" : ""}`;
      return;
    }
    await showViewer(job);
  } catch (error) {
    status.textContent = error instanceof Unauthorized ? error.message : `cannot load: ${error.message}`;
  }
}

main();
