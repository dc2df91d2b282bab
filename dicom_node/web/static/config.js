// The run-time configuration page: lists /api/config/{ae,source,destination}, adds, changes, removes, echoes.
"use strict";

const KEYS = { ae: "ae_title", source: "name", destination: "name" };
const COLUMNS = {
  ae: ["ae_title", "pipelines", "settle_seconds", "sop_classes"],
  source: ["name", "ae_title", "host", "called_aes", "query_retrieve"],
  destination: ["name", "ae_title", "host", "port", "tls", "pipelines", "retrieve_method"],
};

function say(text, failed = false) {
  const message = document.getElementById("message");
  message.textContent = text;
  message.className = failed ? "reason" : "muted";
}

// An answer's problems as the API words them: each field with its rule (422), or the refusal (404, 409).
async function send(path, options) {
  const answer = await fetch(path, { headers: { "Content-Type": "application/json" }, ...options });
  if (answer.status === 401) return api(path);  // shows the token form
  const body = await answer.json().catch(() => ({}));
  if (!answer.ok) {
    const rules = (body.errors || []).map((problem) => `${problem.field}: ${problem.rule}`).join("; ");
    throw Object.assign(new Error(rules || body.detail || answer.statusText), { body });
  }
  return body;
}

function cell(value) {
  return Array.isArray(value) ? value.join(", ") : value === null || value === undefined ? "" : String(value);
}

async function remove(kind, name) {
  try {
    await send(`/api/config/${kind}/${encodeURIComponent(name)}`, { method: "DELETE" });
  } catch (error) {
    const pending = error.body && error.body.pending_exports;
    if (!pending || !confirm(`${error.message}\n\nRemove it anyway? Its ${pending} pending export(s) fail.`)) return say(error.message, true);
    await send(`/api/config/${kind}/${encodeURIComponent(name)}?force=true`, { method: "DELETE" });
  }
  say(`${kind} ${name} removed`);
  load();
}

async function echo(name) {
  try {
    const answer = await send(`/api/config/destination/cecho/${encodeURIComponent(name)}`);
    say(`${name}: C-ECHO status ${answer.status} in ${Math.round(answer.seconds * 1000)} ms`);
  } catch (error) {
    say(error.message, true);
  }
}

function edit(kind, entity) {
  const form = document.getElementById("edit-form");
  form.elements.kind.value = kind;
  form.elements.name.value = entity[KEYS[kind]];
  form.elements.body.value = JSON.stringify(entity, null, 2);
  form.scrollIntoView();
}

async function load() {
  for (const section of document.querySelectorAll("section[data-kind]")) {
    const kind = section.dataset.kind;
    const entities = await apiJson(`/api/config/${kind}`);
    section.querySelector("thead").replaceChildren(el("tr", {}, ...COLUMNS[kind].map((column) => el("th", {}, column)), el("th")));
    section.querySelector("tbody").replaceChildren(...entities.map((entity) => {
      const name = entity[KEYS[kind]];
      const actions = el("td", {},
        el("button", { type: "button", onclick: () => edit(kind, entity) }, "edit"), " ",
        el("button", { type: "button", onclick: () => remove(kind, name) }, "remove"));
      if (kind === "destination") actions.append(" ", el("button", { type: "button", onclick: () => echo(name) }, "echo"));
      return el("tr", { "data-name": name }, ...COLUMNS[kind].map((column) => el("td", {}, cell(entity[column]))), actions);
    }));
  }
}

document.getElementById("edit-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const kind = form.elements.kind.value;
  const name = form.elements.name.value.trim();
  try {
    const body = JSON.stringify(JSON.parse(form.elements.body.value));
    const path = name ? `/api/config/${kind}/${encodeURIComponent(name)}` : `/api/config/${kind}`;
    const saved = await send(path, { method: name ? "PUT" : "POST", body });
    say(`${kind} ${saved[KEYS[kind]]} ${name ? "changed" : "added"}`);
    load();
  } catch (error) {
    say(error.message, true);
  }
});

load().catch((error) => { if (!(error instanceof Unauthorized)) say(error.message, true); });
