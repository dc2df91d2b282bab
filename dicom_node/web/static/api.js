// Shared by the pages: API calls (with the session cookie, when the node has a token), and small helpers.
// The token is typed once and exchanged for an HttpOnly cookie (POST /api/session): no script keeps it, and no
// URL ever carries it (web/session.py).
"use strict";

const REJECTED_KEY = "dicom-node-token-rejected";  // the last token typed was refused: say so on the reloaded page

class Unauthorized extends Error {}

async function api(path, options = {}) {
  const response = await fetch(path, options);  // same origin: the browser adds the session cookie
  if (response.status === 401) {
    const rejected = sessionStorage.getItem(REJECTED_KEY) === "1";
    showTokenForm(rejected);
    throw new Unauthorized(rejected ? "wrong token" : "token required");
  }
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(`${response.status}: ${detail}`);
  }
  return response;
}

async function apiJson(path, options) {
  return (await api(path, options)).json();
}

// The node answers 401 when it has a token and we sent none or a wrong one: ask for it, saying which.
function showTokenForm(rejected) {
  const form = document.getElementById("token-form");
  if (!form || !form.hidden) return;
  form.querySelector(".token-error").textContent = rejected ? "The node did not accept this token: check it and enter it again." : "";
  form.hidden = false;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = form.elements.token.value.trim();
    form.elements.token.value = "";
    const answer = await fetch("/api/session", { method: "POST", headers: { Authorization: `Bearer ${token}` } });
    if (answer.ok) sessionStorage.removeItem(REJECTED_KEY);
    else sessionStorage.setItem(REJECTED_KEY, "1");
    location.reload();
  }, { once: true });
}

// A download through fetch, so that a refused one shows the token form instead of an error page.
async function download(path, filename) {
  const blob = await (await api(path)).blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = filename;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

function stateBadge(state) {
  return el("span", { class: `state state-${state || "none"}` }, state || "no job");
}

// A time from the API (ISO 8601 with offset) as ISO 8601 in the browser's time zone, offset included,
// e.g. 2026-12-01 23:30:12 +01:00: unambiguous whatever the browser's locale.
function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  const pad = (n) => String(Math.trunc(Math.abs(n))).padStart(2, "0");
  const offset = -date.getTimezoneOffset();
  const zone = `${offset < 0 ? "-" : "+"}${pad(offset / 60)}:${pad(offset % 60)}`;
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())} ${zone}`;
}

// A DICOM date (DA, YYYYMMDD) as YYYY-MM-DD; anything else as it is.
function dicomDate(value) {
  const match = /^(\d{4})(\d{2})(\d{2})$/.exec(value || "");
  return match ? `${match[1]}-${match[2]}-${match[3]}` : (value || "");
}
