// The operator page: everything it shows and does goes through the same admin API as the CLI.
"use strict";

const TOKEN_KEY = "warden-admin-token";
const POINTS = 150; // 5 minutes of 2-second samples
const history = { players: [], ticks: [], errors: new Map(), lastTicks: null };
let roomSort = { key: "players", desc: true };
let lastRooms = [];

function token() { return sessionStorage.getItem(TOKEN_KEY); }

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { "Authorization": "Bearer " + token(), "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status === 401) { sessionStorage.removeItem(TOKEN_KEY); askToken(text); throw new Error(text); }
  if (!res.ok) throw new Error(text || res.statusText);
  return path === "/metrics" ? text : JSON.parse(text);
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function askToken(why) {
  const dialog = document.getElementById("login");
  document.getElementById("login-error").textContent = why || "";
  if (!dialog.open) dialog.showModal();
}

document.getElementById("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value.trim());
  try {
    await api("GET", "/status");
    document.getElementById("login").close();
    refresh();
  } catch (e) {
    document.getElementById("login-error").textContent = String(e.message || e);
  }
});

// The Prometheus text format, enough of it for the charts: name{labels} value.
function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

function push(series, value) { series.push(value); if (series.length > POINTS) series.shift(); }

function sample(samples) {
  const sum = (name) => samples.filter((s) => s.name === name).reduce((a, s) => a + s.value, 0);
  push(history.players, sum("warden_players_connected"));
  const ticks = sum("warden_ticks_total");
  const now = performance.now();
  if (history.lastTicks) push(history.ticks, Math.max(0, (ticks - history.lastTicks.v) / ((now - history.lastTicks.t) / 1000)));
  history.lastTicks = { v: ticks, t: now };
  for (const s of samples.filter((s) => s.name === "warden_health_window_error_ratio")) {
    const key = s.labels.plugin + " " + s.labels.version;
    if (!history.errors.has(key)) history.errors.set(key, []);
    push(history.errors.get(key), s.value);
  }
}

const COLORS = ["#2f5fd0", "#b42318", "#067647", "#b54708", "#6941c6", "#0e7090"];

function draw(id, lines) {
  const c = document.getElementById(id), g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const top = Math.max(0, ...lines.flatMap((l) => l.values));
  const max = top || 1;
  g.font = "10px system-ui"; g.fillStyle = "#6b7383";
  g.fillText(top === 0 ? "0" : top >= 10 ? Math.round(top) : top.toPrecision(2), 2, 10);
  lines.forEach((line, i) => {
    g.strokeStyle = COLORS[i % COLORS.length]; g.beginPath();
    line.values.forEach((v, x) => {
      const px = (x / (POINTS - 1)) * (c.width - 4) + 2, py = c.height - 4 - (v / max) * (c.height - 16);
      x ? g.lineTo(px, py) : g.moveTo(px, py);
    });
    g.stroke();
    if (line.label) { g.fillStyle = COLORS[i % COLORS.length]; g.fillText(line.label, 40 + i * 90, 10); }
  });
}

function charts() {
  draw("chart-players", [{ values: history.players }]);
  draw("chart-ticks", [{ values: history.ticks }]);
  draw("chart-errors", [...history.errors].map(([label, values]) => ({ label, values })));
}

async function act(plugin, action, body, question) {
  if (question && !confirm(question)) return;
  try {
    const out = await api("POST", `/plugins/${encodeURIComponent(plugin)}/${action}`, body);
    document.getElementById("state").textContent = out.message;
  } catch (e) {
    alert(`${action} ${plugin}: ${e.message}`);
  }
  refresh();
}

function renderPlugins(status, samples) {
  const limit = (plugin) => samples.find((s) => s.name === "warden_health_max_error_ratio" && s.labels.plugin === plugin)?.value;
  const root = document.getElementById("plugins");
  root.replaceChildren(...status.plugins.map((p) => {
    const max = limit(p.name);
    const newest = p.versions[0];
    const paused = p.versions.some((v) => v.paused);
    return el("div", { class: "plugin", "data-plugin": p.name },
      el("h3", {}, p.name),
      el("div", {}, ...(p.switches || []).map((s) => el("label", { class: "switch" },
        el("input", {
          type: "checkbox", checked: s.on, "data-switch": `${p.name}/${s.switch}`,
          onchange: (ev) => act(p.name, "switch", { switch: s.switch, on: ev.target.checked }),
        }),
        s.switch + (s.on === s.default ? "" : ` (default ${s.default ? "on" : "off"})`)))),
      el("div", { class: "actions" },
        el("button", { "data-action": "promote", "data-plugin": p.name, onclick: () => act(p.name, "promote", {}, `Promote ${p.name} ${newest?.version} one phase now?`) }, "Promote"),
        el("button", { "data-action": "pause", "data-plugin": p.name, onclick: () => act(p.name, "pause", { resume: paused }, `${paused ? "Resume" : "Pause"} the rollout of ${p.name}?`) }, paused ? "Resume" : "Pause"),
        el("button", { class: "danger", "data-action": "rollback", "data-plugin": p.name, onclick: () => act(p.name, "rollback", {}, `Roll ${p.name} back? Its serving version is marked bad and every room goes back to the previous stable version.`) }, "Roll back")),
      el("table", {},
        el("thead", {}, el("tr", {}, ["Version", "State", "Phase", "Rooms", "Calls", "Errors", "Traps", "p99"].map((h, i) => el("th", { class: i > 2 ? "num" : "" }, h)))),
        el("tbody", {}, p.versions.map((v) => el("tr", { "data-version": v.version },
          el("td", {}, v.version), el("td", {}, v.state), el("td", {}, (v.phase || "-") + (v.paused ? "*" : "")),
          el("td", { class: "num" }, v.rooms), el("td", { class: "num" }, v.window.calls),
          el("td", { class: "num " + (max !== undefined && v.error_rate > max ? "bad" : "") }, `${(100 * v.error_rate).toFixed(1)}%` + (max !== undefined ? ` / ${(100 * max).toFixed(1)}%` : "")),
          el("td", { class: "num" }, v.window.traps + v.window.deadlines),
          el("td", { class: "num" }, v.p99_us == null ? "-" : `${v.p99_us} µs`))))));
  }));
  if (status.rollbacks.length) {
    root.append(el("h3", {}, "Last rollbacks"), el("ul", {}, status.rollbacks.map((r) =>
      el("li", {}, `${new Date(r.at_ms).toISOString().replace("T", " ").slice(0, 19)} ${r.plugin} ${r.version} by ${r.actor}: ${r.detail}`))));
  }
}

function renderFleet(fleet) {
  const section = document.getElementById("fleet");
  section.hidden = !fleet;
  if (!fleet) return;
  document.getElementById("fleet-summary").textContent =
    `Answered by host ${fleet.this_host}; rollouts run by host ${fleet.leader ?? "(none yet)"}. Rooms and window figures above are summed across the live hosts.`;
  const ready = (host) => {
    const by = {};
    for (const v of fleet.versions.filter((v) => v.host === host)) (by[v.plugin] ||= []).push(v.state === "ready" ? v.version : `!${v.version}`);
    return Object.entries(by).map(([p, vs]) => `${p} ${vs.join(" ")}`).join("; ") || "-";
  };
  const state = (h) => (h.live ? (h.draining ? "draining" : "live") : h.lease_left_ms > 0 ? "dead" : "expired");
  document.querySelector("#fleet-hosts tbody").replaceChildren(...fleet.hosts.map((h) => el("tr", { "data-host": h.id },
    el("td", {}, h.id), el("td", { class: state(h) === "live" ? "" : "bad" }, state(h)), el("td", { class: "num" }, h.load),
    el("td", {}, ready(h.id)), el("td", {}, h.addresses))));
}

function roomValue(r, key) {
  if (key === "game" || key === "room" || key === "version") return r[key];
  if (key === "age") return Date.now() - r.opened_ms;
  return r.usage[key];
}

function renderRooms() {
  const { key, desc } = roomSort;
  const rows = [...lastRooms].sort((a, b) => {
    const x = roomValue(a, key), y = roomValue(b, key);
    return (x < y ? -1 : x > y ? 1 : 0) * (desc ? -1 : 1);
  });
  const kib = (b) => `${Math.round(b / 1024)} KiB`;
  document.querySelector("#rooms tbody").replaceChildren(...rows.map((r) => el("tr", { "data-room": `${r.game}/${r.room}` },
    el("td", {}, r.game), el("td", {}, r.room), el("td", {}, r.version),
    el("td", { class: "num" }, r.usage.players), el("td", { class: "num" }, `${Math.round((Date.now() - r.opened_ms) / 1000)} s`),
    el("td", { class: "num" }, r.usage.ticks), el("td", { class: "num" }, `${r.usage.tick_p99_us} µs`),
    el("td", { class: "num" }, r.usage.late_ticks), el("td", { class: "num" }, r.usage.inbox),
    el("td", { class: "num" }, r.usage.timers), el("td", { class: "num" }, kib(r.usage.journal_bytes)),
    el("td", { class: "num" }, kib(r.usage.linear_memory_bytes)))));
  document.getElementById("rooms-count").textContent = `(${rows.length})`;
  document.querySelectorAll("#rooms th").forEach((th) => th.classList.toggle("sorted", th.dataset.key === key));
}

document.querySelectorAll("#rooms th[data-key]").forEach((th) => th.addEventListener("click", () => {
  roomSort = { key: th.dataset.key, desc: roomSort.key === th.dataset.key ? !roomSort.desc : true };
  renderRooms();
}));

function renderRules(view, alerts) {
  document.querySelector("#rules tbody").replaceChildren(...view.rules.map((r) => el("tr", {},
    el("td", {}, r.name), el("td", {}, r.figure), el("td", {}, r.per), el("td", { class: "num" }, r.limit), el("td", {}, r.action),
    el("td", { class: "num" }, view.fired.filter(([n]) => n === r.name).reduce((a, [, , c]) => a + c, 0)))));
  document.getElementById("alerts").replaceChildren(...(alerts.length ? alerts.slice(0, 20).map((a) =>
    el("li", {}, `${new Date(a.at_ms).toISOString().slice(11, 19)} ${a.rule}: ${a.figure} of ${a.subject} = ${a.value} > ${a.limit} (${a.action})`))
    : [el("li", { class: "muted" }, "none since the server started")]));
}

function renderLog(log) {
  const reverts = log.reverts ? ` (back to ${log.reverts[1]} at ${new Date(log.reverts[0]).toISOString().slice(11, 19)})` : "";
  document.getElementById("log-now").textContent = log.filter ? `Now: ${log.filter}${reverts}` : "This server's log filter cannot be changed.";
}

document.getElementById("log-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const forMs = document.getElementById("log-for").value;
  try {
    const out = await api("POST", "/admin/log", { filter: document.getElementById("log-filter").value, for_ms: forMs ? Number(forMs) : null });
    document.getElementById("log-result").textContent = out.message;
  } catch (e) {
    document.getElementById("log-result").textContent = e.message;
  }
  refresh();
});

let refreshing = false;
async function refresh() {
  if (!token() || refreshing) return;
  refreshing = true;
  try {
    const [status, rooms, rules, alerts, metrics] = await Promise.all([
      api("GET", "/status"), api("GET", "/admin/rooms"), api("GET", "/admin/rules"), api("GET", "/admin/alerts"), api("GET", "/metrics"),
    ]);
    const samples = parseMetrics(metrics);
    sample(samples);
    renderPlugins(status, samples);
    renderFleet(status.fleet);
    lastRooms = rooms;
    renderRooms();
    renderRules(rules, alerts);
    if (status.log) renderLog(status.log);
    charts();
    document.getElementById("server").textContent = location.host;
    document.getElementById("state").textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.loaded = "true";
  } catch (e) {
    document.getElementById("state").textContent = String(e.message || e);
  } finally {
    refreshing = false;
  }
}

if (token()) refresh(); else askToken();
setInterval(refresh, 2000);
