// The dashboard's logic: polls /api/v1/stats, /api/v1/agents and /api/v1/tasks every two
// seconds and renders them; Retry and Cancel call the task endpoints. Every value from the
// server is set as text (never as HTML), and the page loads nothing but its own files.
"use strict";

const REFRESH_MS = 2000;
const STATUSES = ["pending", "scheduled", "assigned", "running", "succeeded", "dead", "cancelled"];
const TOKEN_KEY = "pm-agent-token";

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

/** A call of the JSON API; rejects with the server's error message on a non-2xx answer. */
async function api(method, path) {
  const headers = {};
  if (token()) {
    headers.Authorization = "Bearer " + token();
  }
  const response = await fetch(path, { method, headers });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body && body.error ? body.error.message : response.statusText;
    const error = new Error(`${method} ${path}: ${response.status} ${message}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (className) {
    td.className = className;
  }
  return td;
}

function ago(iso) {
  if (!iso) {
    return "";
  }
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  return seconds < 90 ? `${seconds.toFixed(1)} s` : `${Math.round(seconds / 60)} min`;
}

function actionButton(row, label, action, taskId) {
  const button = document.createElement("button");
  button.textContent = label;
  button.dataset[action] = taskId;
  button.addEventListener("click", () => act(action, taskId));
  row.insertCell().appendChild(button);
}

async function act(action, taskId) {
  try {
    await api("POST", `/api/v1/tasks/${encodeURIComponent(taskId)}/${action}`);
    showStatus("");
  } catch (e) {
    showStatus(e.message, "action");
  }
  refresh();
}

/** A message under the header; `kind` "refresh" is cleared by the next good refresh. */
function showStatus(text, kind = "") {
  const status = document.getElementById("status");
  status.textContent = text;
  status.dataset.kind = kind;
}

function renderQueues(stats) {
  const table = document.getElementById("queues");
  const head = table.tHead.rows[0];
  while (head.cells.length > 1) {
    head.deleteCell(1);
  }
  for (const status of STATUSES) {
    const th = document.createElement("th");
    th.textContent = status;
    head.appendChild(th);
  }
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const [queue, counts] of Object.entries(stats.queues || {}).sort()) {
    const row = body.insertRow();
    row.dataset.queue = queue;
    cell(row, queue);
    for (const status of STATUSES) {
      cell(row, counts[status] || 0, "num");
    }
  }
  const agents = stats.agents || {};
  document.getElementById("agent-counts").textContent =
      `${agents.online || 0} online, ${agents.draining || 0} draining, ${agents.offline || 0} offline`;
  document.getElementById("server").textContent =
      `${stats.version} · ${stats.worker} · ${stats.store} · up ${Math.round(stats.uptime_s)} s`;
}

function renderAgents(page) {
  const body = document.querySelector("#agents tbody");
  body.replaceChildren();
  for (const agent of page.items) {
    const row = body.insertRow();
    row.dataset.agent = agent.id;
    cell(row, agent.name);
    cell(row, agent.id);
    cell(row, agent.status, "status-" + agent.status);
    cell(row, `${agent.running} / ${agent.max_concurrency}`, "num");
    cell(row, agent.queues.join(", "));
    cell(row, ago(agent.last_heartbeat), "num");
    cell(row, agent.worker);
  }
}

/** A table row for a task, beginning with its id, queue and type. */
function taskRow(body, task) {
  const row = body.insertRow();
  row.dataset.task = task.id;
  cell(row, task.id);
  cell(row, task.queue);
  cell(row, task.type);
  return row;
}

function renderDead(page) {
  const body = document.querySelector("#dead tbody");
  body.replaceChildren();
  for (const task of page.items) {
    const row = taskRow(body, task);
    cell(row, `${task.attempts} / ${task.max_attempts}`, "num");
    cell(row, task.error, "error");
    cell(row, ago(task.updated_at), "num");
    actionButton(row, "Retry", "retry", task.id);
  }
}

function renderRecent(page) {
  const body = document.querySelector("#recent tbody");
  body.replaceChildren();
  for (const task of page.items) {
    const row = taskRow(body, task);
    cell(row, task.status, "status-" + task.status);
    cell(row, `${task.attempts} / ${task.max_attempts}`, "num");
    cell(row, task.agent_id);
    cell(row, ago(task.created_at), "num");
    if (["dead", "cancelled"].includes(task.status)) {
      actionButton(row, "Retry", "retry", task.id);
    } else if (!["succeeded", "failed"].includes(task.status)) {
      actionButton(row, "Cancel", "cancel", task.id);
    } else {
      row.insertCell();
    }
  }
}

let refreshing = false;

async function refresh() {
  if (refreshing) {
    return;
  }
  refreshing = true;
  try {
    const [stats, agents, dead, recent] = await Promise.all([
      api("GET", "/api/v1/stats"),
      api("GET", "/api/v1/agents?limit=200"),
      api("GET", "/api/v1/tasks?status=dead&limit=50"),
      api("GET", "/api/v1/tasks?limit=50"),
    ]);
    renderQueues(stats);
    renderAgents(agents);
    renderDead(dead);
    renderRecent(recent);
    document.body.dataset.loaded = "true";
    if (document.getElementById("status").dataset.kind === "refresh") {
      showStatus("");
    }
  } catch (e) {
    showStatus(e.status === 401 || e.status === 403
                   ? "An admin token is needed: enter it above." : e.message, "refresh");
  } finally {
    refreshing = false;
  }
}

document.getElementById("auth").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("token");
  sessionStorage.setItem(TOKEN_KEY, input.value.trim());
  input.value = "";
  refresh();
});

refresh();
setInterval(refresh, REFRESH_MS);
