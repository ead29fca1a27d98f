// meet-coordinator operations dashboard: the state each second and actor events as they happen,
// both from /ops/api/events/ (server-sent events). Plain DOM and SVG; no external request.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  let state = null;
  let selected = null;
  let detailTimer = null;
  const rooms = new Map(); // room -> row data, updated by state ticks and by room events
  const flashed = new Set();

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function fill(tbody, rows) {
    tbody.replaceChildren(...rows);
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 60) return `${seconds}s`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, "0")}s`;
    return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, "0")}m`;
  }

  function ago(at) {
    if (!at) return "–";
    return duration(Date.now() / 1000 - at) + " ago";
  }

  function clock(at) {
    return new Date(at * 1000).toLocaleTimeString([], { hour12: false });
  }

  function number(value, digits = 0) {
    if (value === null || value === undefined) return "–";
    return Number(value).toFixed(digits);
  }

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  // -- KPIs ------------------------------------------------------------------------------

  function kpi(label, value, level) {
    return el("div", { class: `kpi ${level || ""}` }, el("div", { class: "label" }, label),
      el("div", { class: "value" }, value));
  }

  function renderKpis() {
    const s = state;
    const list = [...rooms.values()];
    const participants = list.reduce((n, r) => n + r.participants, 0);
    const lobby = list.reduce((n, r) => n + r.lobby, 0);
    const recording = list.filter((r) => r.recording).length;
    const outbox = s.pipeline.outbox || {};
    let pending = 0, failed = 0;
    for (const counts of Object.values(outbox)) {
      pending += counts.pending || 0;
      failed += counts.failed || 0;
    }
    const lag = s.webhook_lag.p95;
    const queued = (s.engine.hosts || []).reduce((n, h) => n + (h.queued || 0), 0);
    const down = (s.engine.hosts || []).filter((h) => !h.alive).length;
    $("kpis").replaceChildren(
      kpi("rooms", rooms.size),
      kpi("participants", participants),
      kpi("in lobby", lobby, lobby ? "warn" : ""),
      kpi("recording", recording),
      kpi("webhooks/s", number(s.rates.webhooks, 1)),
      kpi("requests/s", number(s.rates.requests, 1)),
      kpi("5xx/s", number(s.rates.errors, 1), s.rates.errors > 0 ? "bad" : ""),
      kpi("lag p95", lag === null ? "–" : `${number(lag, 1)}s`, lag > 5 ? "warn" : ""),
      kpi("outbox queue", pending, s.pipeline.oldest_pending_seconds > 300 ? "warn" : ""),
      kpi("outbox failed", failed, failed ? "bad" : ""),
      kpi("queued", queued, queued > 100 ? "warn" : ""),
      kpi("hosts down", down, down ? "bad" : ""),
    );
  }

  // -- charts ----------------------------------------------------------------------------

  function chart(svg, series, options = {}) {
    const width = 600, height = 120, top = 12;
    const values = series[0];
    const max = Math.max(1, ...series.flat());
    const x = (i) => (i / Math.max(1, values.length - 1)) * width;
    const y = (v) => height - 2 - (v / max) * (height - top - 2);
    const nodes = [];
    for (const fraction of [0.5, 1]) {
      const gy = y(max * fraction);
      const line = document.createElementNS(SVG, "line");
      for (const [k, v] of Object.entries({ x1: 0, x2: width, y1: gy, y2: gy, class: "grid" })) line.setAttribute(k, v);
      nodes.push(line);
    }
    series.forEach((points, index) => {
      const path = points.map((v, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join("");
      if (index === 0 && options.area !== false) {
        const area = document.createElementNS(SVG, "path");
        area.setAttribute("d", `${path}L${width},${height}L0,${height}Z`);
        area.setAttribute("class", "area");
        nodes.push(area);
      }
      const line = document.createElementNS(SVG, "path");
      line.setAttribute("d", path);
      line.setAttribute("class", index === 0 ? "line" : "line bad");
      nodes.push(line);
    });
    const peak = svg.parentNode.querySelector(".axis .max");
    if (peak) peak.textContent = `peak ${Number.isInteger(max) ? max : max.toFixed(1)}`;
    svg.replaceChildren(...nodes);
  }

  function renderCharts() {
    const s = state.series;
    chart($("chart-participants"), [s.participants]);
    chart($("chart-webhooks"), [s.webhooks]);
    chart($("chart-requests"), [s.requests, s.errors]);
    $("participants-now").textContent = s.participants[s.participants.length - 1] ?? "";
    $("webhooks-now").textContent = `${number(state.rates.webhooks, 1)}/s`;
    $("requests-now").textContent = `${number(state.rates.requests, 1)}/s`;
  }

  // -- rooms -----------------------------------------------------------------------------

  function recordingCell(recording) {
    if (!recording) return el("span", { class: "muted" }, "–");
    const level = recording.status === "active" ? "bad" : "warn";
    return el("span", {}, el("span", { class: `pill ${level}` }, recording.status), " ",
      recording.mode === "transcript" ? "transcript " : "",
      el("span", { class: "muted" }, duration(recording.seconds)));
  }

  function renderRooms() {
    const list = [...rooms.values()].sort((a, b) =>
      b.participants - a.participants || b.lobby - a.lobby || a.room.localeCompare(b.room));
    const rows = list.map((r) => {
      const row = el("tr", {
        "data-room": r.room,
        class: [r.room === selected ? "selected" : "", flashed.has(r.room) ? "flash" : ""].join(" ").trim(),
        onclick: () => openDetail(r.room),
      },
        el("td", { class: "mono", title: r.room }, r.label || r.room),
        el("td", { class: "num participants" }, r.participants),
        el("td", { class: "num lobby" }, r.lobby || ""),
        el("td", { class: "recording" }, recordingCell(r.recording)),
        el("td", { class: "num muted" }, ago(r.last_event_at)));
      return row;
    });
    flashed.clear();
    fill($("rooms").tBodies[0], rows);
    $("rooms-empty").hidden = rows.length > 0;
    const total = state ? state.rooms_total : rows.length;
    $("rooms-count").textContent = total > rows.length ? `${rows.length} of ${total}` : `${rows.length}`;
  }

  function applyRoomEvent(event) {
    const summary = event.summary;
    const current = rooms.get(event.room) || { room: event.room, label: event.room };
    if (summary) {
      current.participants = summary.participants;
      current.lobby = summary.lobby_waiting.length;
      const before = current.recording;
      current.recording = summary.recording
        ? Object.assign({ seconds: before ? before.seconds : 0 }, summary.recording)
        : null;
    }
    current.last_event_at = event.at;
    rooms.set(event.room, current);
    if (event.type !== "room_summary") flashed.add(event.room);
  }

  // -- events log ------------------------------------------------------------------------

  function describe(event) {
    switch (event.type) {
      case "webhook": return `${event.event} → ${event.result}${event.lag != null ? ` (lag ${event.lag}s)` : ""}`;
      case "participant_joined": return `${event.identity}${event.name ? ` (${event.name})` : ""}`;
      case "participant_left": return event.identity;
      case "lobby": return `${event.waiting} waiting`;
      case "recording": return `${event.status || "none"}${event.egress_status ? ` / ${event.egress_status}` : ""}`;
      default: return "";
    }
  }

  function eventItem(event, withRoom) {
    const room = rooms.get(event.room);
    return el("li", { title: JSON.stringify(event) },
      el("span", { class: "t" }, clock(event.at)),
      el("span", { class: `k ${event.type}` }, event.type),
      withRoom ? el("span", { class: "muted" }, `${room && room.label ? room.label : event.room} `) : null,
      describe(event));
  }

  function renderEvents(events) {
    $("events").replaceChildren(...events.slice().reverse().map((e) => eventItem(e, true)));
  }

  function prependEvent(event) {
    const log = $("events");
    log.prepend(eventItem(event, true));
    while (log.children.length > 60) log.lastChild.remove();
  }

  // -- detail ----------------------------------------------------------------------------

  async function openDetail(room) {
    selected = room;
    $("detail").hidden = false;
    renderRooms();
    await loadDetail();
  }

  function scheduleDetail() {
    if (!selected || detailTimer) return;
    detailTimer = setTimeout(() => { detailTimer = null; loadDetail(); }, 200);
  }

  async function loadDetail() {
    const room = selected;
    if (!room) return;
    const response = await fetch(`/ops/api/rooms/${encodeURIComponent(room)}/`, { credentials: "same-origin" });
    if (room !== selected) return;
    const body = $("detail-body");
    $("detail-title").textContent = (rooms.get(room) || {}).label || room;
    if (!response.ok) {
      body.replaceChildren(el("p", { class: "empty" }, response.status === 404 ? "This room is no longer live." : `Error ${response.status}`));
      return;
    }
    const d = await response.json();
    const recording = d.recording;
    const parts = [
      el("dl", { class: "facts" },
        el("dt", {}, "room id"), el("dd", { class: "mono" }, d.room),
        el("dt", {}, "recording"), el("dd", {}, recording ? `${recording.status} · ${recording.mode} · egress ${recording.egress_id || "–"} (${recording.egress_status || "–"})` : "–"),
        el("dt", {}, "commands"), el("dd", {}, d.counters ? `${d.counters.commands} commands, ${d.counters.webhooks} webhooks` : "–")),
      el("h3", {}, `Participants (${(d.participants || []).length})`),
      el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "identity"), el("th", {}, "name"), el("th", {}, "tracks"), el("th", { class: "num" }, "joined"))),
        el("tbody", {}, ...(d.participants || []).map((p) => el("tr", {},
          el("td", { class: "mono" }, p.identity), el("td", {}, p.name || ""),
          el("td", { class: "tracks" }, p.tracks.map((t) => `${String(t.source || t.type || "track").toLowerCase().replace(/_/g, " ")}${t.muted ? " (muted)" : ""}`).join(", ") || "–"),
          el("td", { class: "num muted" }, p.joined_at ? clock(p.joined_at) : "–"))))),
      el("h3", {}, `Lobby (${(d.lobby || []).length})`),
      (d.lobby || []).length
        ? el("table", {}, el("tbody", {}, ...d.lobby.map((e) => el("tr", {}, el("td", {}, e.username), el("td", {}, e.status), el("td", { class: "num muted" }, `${e.expires_in}s left`)))))
        : el("p", { class: "empty" }, "Nobody waiting."),
      el("h3", {}, "Last events"),
      el("ol", { class: "log" }, ...(d.events || []).slice().reverse().map((e) => eventItem(e, false))),
    ];
    body.replaceChildren(...parts);
  }

  // -- pipeline, LiveKit, engine -----------------------------------------------------------

  async function retry(id, button) {
    button.disabled = true;
    button.textContent = "retrying…";
    const response = await fetch(`/ops/api/outbox/${encodeURIComponent(id)}/retry/`, {
      method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrfToken() },
    });
    button.textContent = response.ok ? "queued" : `error ${response.status}`;
  }

  function renderPipeline() {
    const p = state.pipeline;
    $("pipeline-error").hidden = !p.error;
    $("pipeline-error").textContent = p.error || "";
    const roomLabel = (id, slug) => slug || (rooms.get(id) || {}).label || id;
    fill($("egresses").tBodies[0], (p.in_flight || []).map((r) => el("tr", {},
      el("td", { class: "mono" }, roomLabel(r.room, r.slug)), el("td", {}, r.mode),
      el("td", {}, el("span", { class: `pill ${r.status === "active" ? "ok" : "warn"}` }, r.status)),
      el("td", { class: "mono muted" }, r.egress_id || "–"), el("td", { class: "num" }, duration(r.seconds)))));
    if (!(p.in_flight || []).length) fill($("egresses").tBodies[0], [el("tr", {}, el("td", { colspan: 5, class: "empty" }, "No recording in flight."))]);
    const kinds = Object.entries(p.outbox || {}).sort();
    fill($("outbox").tBodies[0], kinds.length ? kinds.map(([kind, counts]) => el("tr", {},
      el("td", {}, kind), el("td", { class: "num" }, counts.pending || 0),
      el("td", { class: `num ${counts.failed ? "error" : ""}` }, counts.failed || 0),
      el("td", { class: "num muted" }, counts.succeeded || 0))) : [el("tr", {}, el("td", { colspan: 4, class: "empty" }, "The outbox is empty."))]);
    $("outbox-summary").textContent = `${p.delivered ?? 0} delivered, ${p.failed_attempts ?? 0} failed attempts by this process` +
      (p.oldest_pending_seconds != null ? `; oldest pending ${duration(p.oldest_pending_seconds)}` : "");
    const failed = p.failed || [];
    const tbody = $("failed").tBodies[0];
    const kept = new Map([...tbody.querySelectorAll("button[data-id]")].map((b) => [b.dataset.id, b]));
    fill(tbody, failed.length ? failed.map((m) => el("tr", {},
      el("td", { class: "nowrap" }, m.kind), el("td", { class: "num" }, m.attempts),
      el("td", { class: "error", title: m.last_error || "" }, (m.last_error || "").slice(0, 160)),
      el("td", {}, kept.get(m.id) || el("button", { type: "button", "data-id": m.id, onclick: (e) => retry(m.id, e.currentTarget) }, "retry now")))) :
      [el("tr", {}, el("td", { colspan: 4, class: "empty" }, "No failed notification."))]);
  }

  function renderLiveKit() {
    const rows = state.livekit;
    fill($("livekit").tBodies[0], rows.length ? rows.map((m) => el("tr", {},
      el("td", { class: "mono" }, m.method), el("td", { class: "num" }, m.calls),
      el("td", { class: `num ${m.errors ? "error" : ""}` }, m.errors),
      el("td", { class: "num" }, number(m.p50_ms, 1)), el("td", { class: "num" }, number(m.p95_ms, 1)),
      el("td", { class: "num muted" }, number(m.max_ms, 1)),
      el("td", { class: "error" }, m.last_error ? `${m.last_error} ${ago(m.last_error_at)}` : ""))) :
      [el("tr", {}, el("td", { colspan: 7, class: "empty" }, "No LiveKit call yet."))]);
    const lag = state.webhook_lag;
    $("lag").textContent = lag.p50 === null ? "" : `webhook lag p50 ${number(lag.p50, 2)}s · p95 ${number(lag.p95, 2)}s · max ${number(lag.max, 2)}s`;
    $("lag").title = "created_at (whole seconds, as LiveKit stamps it) to applied by the room";
  }

  function renderEngine() {
    const e = state.engine;
    $("engine-name").textContent = e.engine + (e.error ? ` · ${e.error}` : "");
    fill($("hosts").tBodies[0], (e.hosts || []).map((h) => el("tr", {},
      el("td", { class: "mono" }, h.name),
      el("td", {}, el("span", { class: `pill ${h.alive ? "ok" : "bad"}` }, h.alive ? "alive" : "down")),
      el("td", { class: "num" }, h.rooms), el("td", { class: "num" }, h.queued),
      el("td", { class: "num" }, h.oldest_queued_seconds == null ? "–" : `${number(h.oldest_queued_seconds, 2)}s`))));
    const t = state.totals;
    $("streams").textContent = `${state.streams.subscribers} live dashboard stream(s), ${state.streams.dropped} cut off for lagging · ` +
      `${t.webhooks} webhooks, ${t.requests} requests since start (${duration(t.uptime_seconds)} ago)`;
  }

  // -- wiring ----------------------------------------------------------------------------

  function applyState(next) {
    state = next;
    rooms.clear();
    for (const r of next.rooms) rooms.set(r.room, r);
    $("version").textContent = `v${next.version} · ${next.engine.engine} engine`;
    $("clock").textContent = clock(next.now);
    renderKpis();
    renderCharts();
    renderRooms();
    renderPipeline();
    renderLiveKit();
    renderEngine();
    if (!document.querySelector("#events li")) renderEvents(next.events);
  }

  function link(status, level) {
    const pill = $("link");
    pill.textContent = status;
    pill.className = `pill ${level}`;
    document.body.classList.toggle("stale", level !== "ok");
    if (level !== "ok" && state) pill.title = `no update since ${clock(state.now)}`;
  }

  function connect() {
    const source = new EventSource("/ops/api/events/");
    source.addEventListener("open", () => link("live", "ok"));
    source.addEventListener("error", () => link("reconnecting", "warn"));
    source.addEventListener("state", (message) => applyState(JSON.parse(message.data)));
    source.addEventListener("room", (message) => {
      const event = JSON.parse(message.data);
      applyRoomEvent(event);
      if (event.type !== "room_summary") prependEvent(event);
      if (state) { renderRooms(); renderKpis(); }
      if (event.room === selected) scheduleDetail();
    });
    source.addEventListener("bye", () => { source.close(); link("reconnecting", "warn"); setTimeout(connect, 1000); });
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("detail-close").addEventListener("click", () => { selected = null; $("detail").hidden = true; renderRooms(); });
    connect();
  });
})();
