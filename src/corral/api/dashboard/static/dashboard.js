// corral's dashboard: reads /api/v3/status and follows /api/v3/events. No polling loop: the
// status is read again when events arrive (at most every MIN_GAP_MS), after a resync and after
// the stream reconnects. Every element is built with the DOM and every value shown is text.
"use strict";

(() => {
  const root = document.documentElement.dataset.root || "";
  const kinds = (document.documentElement.dataset.kinds || "").split(",").filter(Boolean);
  const VIEWS = "pools,queue,runner,hosts,managers,clone,boot,timings";
  const STATUS_URL = `${root}/api/v3/status?view=${VIEWS}`;
  const EVENTS_URL = `${root}/api/v3/events`;
  const MIN_GAP_MS = 250; // between two status reads
  const RETRY_MS = 2000; // after a failed read
  const REOPEN_MS = 5000; // after the server refused the stream
  const MAX_EVENTS = 200; // kept in the list
  const SVG = "http://www.w3.org/2000/svg";

  // -- building elements ------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== undefined && value !== null) node.setAttribute(key, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  const byId = (id) => document.getElementById(id);
  const num = (value) => (typeof value === "number" && Number.isFinite(value) ? value : 0);
  const pct = (part, whole) => (whole > 0 ? Math.max(0, Math.min(100, (100 * part) / whole)) : 0);

  function seconds(value) {
    const s = num(value);
    if (s === 0) return "0";
    if (s < 0.01) return `${(s * 1000).toFixed(1)} ms`;
    if (s < 1) return `${Math.round(s * 1000)} ms`;
    if (s < 120) return `${Number(s.toFixed(s < 10 ? 2 : 1))} s`;
    return `${(s / 60).toFixed(1)} min`;
  }

  function clock(unixSeconds) {
    return new Date(num(unixSeconds) * 1000).toLocaleTimeString([], { hour12: false });
  }

  function bar(cls, segments, marker) {
    const outer = el("div", { class: `bar ${cls}` });
    for (const [name, width] of segments) {
      const seg = el("span", { class: `seg ${name}` });
      seg.style.width = `${width}%`;
      outer.append(seg);
    }
    if (marker !== undefined) {
      const tick = el("span", { class: "mark" });
      tick.style.left = `${marker}%`;
      outer.append(tick);
    }
    return outer;
  }

  function tile(label, value, id) {
    return el("div", { class: "tile", "data-tile": id }, el("span", { class: "value" }, value), el("span", { class: "label" }, label));
  }

  function pairs(list, entries, none) {
    list.replaceChildren(...(entries.length ? entries.map(([k, v]) => el("li", {}, el("span", { class: "key-name" }, k), el("span", { class: "key-value" }, v)))
      : [el("li", { class: "none" }, none)]));
  }

  // -- the status -------------------------------------------------------------------------------
  function renderHeader(status) {
    const s = status.status || {};
    const message = byId("message");
    message.textContent = String(s.message || "");
    message.dataset.ok = s.ok === false ? "false" : "true";
    if (typeof s.uptime === "number") {
      const started = new Date(Date.now() - s.uptime * 1000);
      byId("started").textContent = `up since ${started.toLocaleString([], { hour12: false })}`;
    }
  }

  function renderTotals(status) {
    const q = status.queue;
    if (!q) return;
    byId("totals-tiles").replaceChildren(
      tile("ready", num(q.ready), "ready"), tile("cloning", num(q.cloning), "cloning"),
      tile("booting", num(q.booting), "booting"), tile("running", num(q.running), "running"),
      tile("completed", num(q.completed), "completed"), tile("requested", num(q.requested), "requested"));
  }

  function renderPools(status) {
    const pools = status.pools || {};
    const rows = Object.keys(pools).sort().map((name) => {
      const p = pools[name] || {};
      const ready = num(p.ready), pending = num(p.pending), running = num(p.running), size = num(p.max);
      const scale = Math.max(size, ready + pending + running, 1);
      const label = el("td", { class: "name", title: name }, name);
      if (Array.isArray(p.alias) && p.alias.length) label.append(el("span", { class: "alias" }, `also ${p.alias.join(", ")}`));
      if (p.placement_error) label.append(el("span", { class: "warn" }, String(p.placement_error)));
      const auto = p.autosize;
      if (auto && typeof auto === "object") {
        const how = auto.held ? "held at the API" : `target ${num(auto.target)} of ${num(auto.min_size)}–${num(auto.max_size)}`;
        label.append(el("span", { class: "autosize", title: String(auto.reason || "") },
          `autosized: ${how}; ${String(auto.reason || "")}`));
      }
      return el("tr", { "data-pool": name }, label,
        el("td", { class: "barcol" }, bar("stack", [["ready", pct(ready, scale)], ["pending", pct(pending, scale)],
          ["running", pct(running, scale)]], pct(size, scale))),
        el("td", { class: "num ready" }, ready), el("td", { class: "num pending" }, pending),
        el("td", { class: "num running" }, running), el("td", { class: "num size" }, size));
    });
    byId("pools").tBodies[0].replaceChildren(...rows);
  }

  function hostState(h) {
    if (h.down) return ["down", "bad"];
    if (!h.up) return ["not responding", "bad"];
    if (h.maintenance) return ["maintenance", "muted"];
    return [String(h.health || "ok"), h.health === "red" ? "bad" : h.health === "yellow" ? "warn" : "good"];
  }

  function renderHosts(status) {
    const providers = status.hosts || {};
    const rows = [];
    for (const provider of Object.keys(providers).sort()) {
      const hosts = providers[provider] || {};
      for (const name of Object.keys(hosts).sort()) {
        const h = hosts[name] || {};
        const [state, tone] = hostState(h);
        const cpu = num(h.cpu_percent), mem = num(h.memory_percent);
        rows.push(el("tr", { "data-host": name, "data-provider": provider },
          el("td", { class: "name", title: name }, name),
          el("td", { class: "muted" }, h.cluster ? `${provider} / ${h.cluster}` : provider),
          el("td", { class: "barcol" }, bar("use", [[cpu > 85 ? "hot" : "cpu", cpu]]), el("span", { class: "figure" }, `${cpu.toFixed(0)}%`)),
          el("td", { class: "barcol" }, bar("use", [[mem > 85 ? "hot" : "mem", mem]]), el("span", { class: "figure" }, `${mem.toFixed(0)}%`)),
          el("td", { class: "num vms" }, num(h.vms)), el("td", { class: "num calls" }, num(h.calls_in_flight)),
          el("td", {}, el("span", { class: `badge ${tone}` }, state))));
      }
    }
    byId("hosts").tBodies[0].replaceChildren(...rows);
    byId("hosts-empty").hidden = rows.length > 0;
  }

  function renderRunner(status) {
    const r = status.runner;
    if (!r) return;
    byId("runner-tiles").replaceChildren(
      tile("queued", `${num(r.queued)} / ${num(r.queue_limit)}`, "queued"),
      tile("calls in flight", `${num(r.calls_in_flight)} / ${num(r.task_limit)}`, "calls"),
      tile("calls waiting", num(r.calls_waiting), "waiting"), tile("created", num(r.created), "created"),
      tile("reruns", num(r.reruns), "reruns"), tile("failed", num(r.failed), "failed"));
    const classes = r.queued_by_class || {};
    pairs(byId("runner-classes"), Object.keys(classes).sort().map((k) => [k, num(classes[k])]), "nothing queued");
    const avoided = [];
    for (const [provider, hosts] of Object.entries(r.hosts_avoided || {})) {
      for (const [host, retry] of Object.entries(hosts || {})) avoided.push([`${host} (${provider})`, `retry in ${seconds(retry)}`]);
    }
    pairs(byId("runner-avoided"), avoided, "none");
  }

  function renderManagers(status) {
    const m = status.managers;
    byId("managers-card").hidden = !m;
    if (!m) return;
    const live = m.live || {};
    const rows = Object.keys(live).sort().map((name) => {
      const info = live[name] || {};
      const held = Array.isArray(info.pools) ? info.pools.join(", ") : "";
      const left = typeof info.lease_left_s === "number" ? seconds(info.lease_left_s) : "";
      return el("tr", { "data-manager": name },
        el("td", { class: "name" }, name, name === m.me ? el("span", { class: "alias" }, "this process") : null),
        el("td", {}, String(info.state || "")), el("td", { class: "num" }, num(info.score)),
        el("td", {}, held || "none"), el("td", { class: "num" }, left));
    });
    byId("managers").tBodies[0].replaceChildren(...rows);
  }

  // -- the charts: each clone or boot time of the last hour, against when it ended --------------------
  // the x axis: the shortest span that holds every point; a quarter of each is a round time
  const SPANS = [20, 60, 120, 240, 600, 1200, 2400, 3600];

  function niceMax(value) {
    if (value <= 0) return 1;
    const step = 10 ** Math.floor(Math.log10(value));
    for (const m of [1, 2, 2.5, 5, 10]) if (value <= m * step) return m * step;
    return 10 * step;
  }

  function ago(s) {
    return s >= 60 ? `-${Number((s / 60).toFixed(1))} min` : `-${Math.round(s)} s`;
  }

  function renderChart(id, points, today) {
    const chart = byId(id);
    const box = chart.viewBox.baseVal;
    const W = box.width, H = box.height, left = 52, right = 14, top = 10, bottom = 26;
    const nodes = [];
    const ats = points.map((p) => num(p.at));
    const now = Math.max(Date.now() / 1000, ...ats);
    const span = SPANS.find((s) => now - Math.min(now, ...ats) <= s) || SPANS[SPANS.length - 1];
    const x0 = now - span;
    const ymax = niceMax(Math.max(0, ...points.map((p) => num(p.seconds))));
    const x = (at) => left + (Math.max(0, Math.min(span, num(at) - x0)) / span) * (W - left - right);
    const y = (s) => H - bottom - (Math.min(num(s), ymax) / ymax) * (H - top - bottom);
    for (let i = 0; i <= 4; i++) {
      const value = (ymax * i) / 4;
      nodes.push(svg("line", { x1: left, x2: W - right, y1: y(value), y2: y(value), class: i ? "grid" : "axis" }));
      nodes.push(svg("text", { x: left - 6, y: y(value) + 4, class: "tick", "text-anchor": "end" }, seconds(value)));
    }
    for (let i = 0; i <= 4; i++) {
      const back = span - (i * span) / 4;
      nodes.push(svg("text", { x: x(now - back), y: H - 8, class: "tick", "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" },
        i === 4 ? "now" : ago(back)));
    }
    for (const p of points) {
      const dot = svg("circle", { cx: x(p.at).toFixed(1), cy: y(p.seconds).toFixed(1), r: 3, class: "dot" });
      dot.append(svg("title", {}, `${p.pool}: ${seconds(p.seconds)} at ${clock(p.at)}`));
      nodes.push(dot);
    }
    if (!points.length) nodes.push(svg("text", { x: (W + left) / 2, y: H / 2, class: "nodata", "text-anchor": "middle" }, "none in the last hour"));
    chart.replaceChildren(...nodes);
    const caption = byId(`${id.split("-")[0]}-today`);
    const d = (today && today.duration) || {};
    const count = (today && today.count && today.count.total) || 0;
    caption.textContent = count ? `Today (UTC): ${count}, average ${seconds(d.average)}, min ${seconds(d.min)}, max ${seconds(d.max)}`
      : "Today (UTC): none yet";
  }

  function render(status) {
    renderHeader(status);
    renderTotals(status);
    renderPools(status);
    renderHosts(status);
    renderRunner(status);
    renderManagers(status);
    const timings = status.timings || {};
    renderChart("clone-chart", Array.isArray(timings.clone) ? timings.clone : [], status.clone);
    renderChart("boot-chart", Array.isArray(timings.boot) ? timings.boot : [], status.boot);
    document.body.dataset.reads = String(num(Number(document.body.dataset.reads)) + 1);
  }

  function problem(text) {
    const p = byId("problem");
    p.textContent = text || "";
    p.hidden = !text;
  }

  // -- reading the status: one read at a time, at most every MIN_GAP_MS ---------------------------
  let wanted = false, reading = false, timer = null, lastRead = 0;

  function refresh(delay) {
    wanted = true;
    if (reading || timer !== null) return;
    const wait = Math.max(delay || 0, lastRead + MIN_GAP_MS - Date.now(), 0);
    timer = setTimeout(read, wait);
  }

  async function read() {
    timer = null;
    if (!wanted) return;
    wanted = false;
    reading = true;
    lastRead = Date.now();
    let retry = 0;
    try {
      const resp = await fetch(STATUS_URL, { cache: "no-store", headers: { Accept: "application/json" } });
      const body = await resp.json().catch(() => null);
      if (resp.ok && body) {
        render(body);
        problem("");
      } else {
        const after = Number(resp.headers.get("Retry-After"));
        retry = Number.isFinite(after) && after > 0 ? after * 1000 : RETRY_MS;
        const why = body && (body.error || body.reason);
        problem(`The status could not be read (HTTP ${resp.status}${why ? `: ${why}` : ""}); trying again in ${seconds(retry / 1000)}.`);
      }
    } catch (err) {
      retry = RETRY_MS;
      problem(`The status could not be read (${err && err.message ? err.message : "no answer"}); trying again shortly.`);
    } finally {
      reading = false;
      if (retry) refresh(retry);
      else if (wanted) refresh(0);
    }
  }

  // -- the event stream -------------------------------------------------------------------------
  let pending = [], flushTimer = null, total = 0;

  function describe(kind, e) {
    const where = e.pool ? ` (${e.pool})` : "";
    switch (kind) {
      case "vm.lifecycle":
        return `${e.vm}${where}: ${e.old || "new"} \u2192 ${e.new}${e.host ? ` on ${e.host}` : ""}${e.reason ? `, ${e.reason}` : ""}`;
      case "vm.state":
        return `${e.vm}${where} on ${e.host}: ${e.old} \u2192 ${e.new}`;
      case "vm.moved":
        return `${e.vm}${where}: ${e.old_host} \u2192 ${e.host}`;
      case "vm.migrated":
        return `${e.vm}${where} arrived on ${e.host} after ${seconds(e.seconds)}`;
      case "vm.created":
      case "vm.disappeared":
        return `${e.vm}${where} on ${e.host}`;
      case "host.down":
        return `${e.host} (${e.provider})${e.reason ? `: ${e.reason}` : ""}`;
      case "host.up":
        return `${e.host} (${e.provider}) responds again`;
      case "host.maintenance":
        return `${e.host} (${e.provider}) ${e.maintenance ? "entered" : "left"} maintenance`;
      case "host.overutilized":
        return `${e.host} (${e.provider}) CPU ${num(e.cpu_percent).toFixed(0)}%, memory ${num(e.memory_percent).toFixed(0)}%`;
      default:
        return Object.entries(e).filter(([k]) => k !== "type" && k !== "at").map(([k, v]) => `${k}=${v}`).join(" ");
    }
  }

  function flushEvents() {
    flushTimer = null;
    const list = byId("events");
    const items = pending.map(({ kind, data, at }) => el("li", { "data-kind": kind },
      el("time", {}, clock(at)), el("span", { class: `kind ${kind.split(".")[0]}` }, kind), el("span", { class: "text" }, describe(kind, data))));
    pending = [];
    list.prepend(...items.reverse());
    while (list.childElementCount > MAX_EVENTS) list.lastElementChild.remove();
    byId("events-count").textContent = `${total} since the page opened, newest first`;
  }

  function showEvent(kind, data) {
    total += 1;
    pending.push({ kind, data, at: typeof data.at === "number" ? data.at : Date.now() / 1000 });
    if (pending.length > MAX_EVENTS) pending = pending.slice(-MAX_EVENTS);
    if (flushTimer === null) flushTimer = setTimeout(flushEvents, 100);
  }

  function linkState(state, text) {
    const link = byId("link");
    link.dataset.state = state;
    link.textContent = text;
  }

  function connect() {
    const source = new EventSource(EVENTS_URL);
    source.addEventListener("open", () => {
      linkState("live", "live");
      refresh(0); // what changed while the stream was not open
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        linkState("down", "event stream closed; reconnecting");
        setTimeout(connect, REOPEN_MS);
      } else {
        linkState("connecting", "reconnecting");
      }
    });
    source.addEventListener("resync", () => {
      showEvent("resync", { reason: "events were missed; everything was read again" });
      refresh(0);
    });
    for (const kind of kinds) {
      source.addEventListener(kind, (message) => {
        let data = {};
        try {
          data = JSON.parse(message.data) || {};
        } catch (err) {
          data = {};
        }
        showEvent(kind, data);
        refresh(0);
      });
    }
  }

  refresh(0);
  connect();
})();
