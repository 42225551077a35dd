"use strict";
const WINDOW_S = 300;
const METRICS = [
  ["rps", "requests/s", "#0b5cad"],
  ["concurrency", "concurrency", "#7b3fb3"],
  ["cpu_pct", "CPU % of limit", "#c0392b"],
  ["ready", "ready replicas", "#1e8449"],
];
const state = { series: {}, latest: {}, events: [] };
const tooltip = document.getElementById("tooltip");

function text(value, digits = 1) {
  if (value === null || value === undefined) return "-";
  return typeof value === "number" && !Number.isInteger(value) ? value.toFixed(digits) : String(value);
}

function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value; else node.setAttribute(key, value);
  }
  for (const child of children) node.appendChild(child);
  return node;
}

function seriesOf(name) {
  if (!state.series[name]) state.series[name] = { points: [], decisions: [] };
  return state.series[name];
}

function renderFunctions() {
  const body = document.querySelector("#functions tbody");
  body.replaceChildren(...Object.entries(state.latest).map(([name, f]) => el("tr", { "data-function": name }, [
    el("td", { text: name }), el("td", { class: "revision", text: f.revision }),
    el("td", { class: "desired", text: text(f.desired) }), el("td", { class: "ready", text: f.ready }),
    el("td", { class: "rps", text: text(f.rps) }), el("td", { class: "concurrency", text: text(f.concurrency) }),
    el("td", { class: "cpu", text: text(f.cpu_pct) }), el("td", { class: "traffic", text: f.traffic }),
  ])));
}

function renderNodes(nodes) {
  const body = document.querySelector("#nodes tbody");
  body.replaceChildren(...nodes.map((n) => el("tr", { "data-node": n.node }, [
    el("td", { text: n.node }), el("td", { class: n.condition, text: n.condition }),
    el("td", { text: `${text(n.used_cpus, 2)} / ${text(n.cpus)}` }),
    el("td", { text: `${text(n.used_memory_mb, 0)} / ${text(n.memory_mb)}` }),
    el("td", { text: n.replicas.length ? n.replicas.join(", ") : "-" }),
  ])));
}

function renderEvents() {
  const list = document.getElementById("events");
  list.replaceChildren(...state.events.slice(-60).reverse().map((e) => el("li", {}, [
    el("span", { text: e.time.slice(11, 23) + " " }), el("span", { class: "who", text: e.who + " " }),
    el("span", { text: e.text }),
  ])));
}

function chartCard(name) {
  let card = document.querySelector(`.chart[data-function="${CSS.escape(name)}"]`);
  if (card) return card;
  card = el("div", { class: "chart", "data-function": name }, [el("h3", { text: name })]);
  for (const [key, label] of METRICS) {
    card.appendChild(el("div", { class: "metric", text: label }));
    const canvas = el("canvas", { "data-metric": key });
    canvas.addEventListener("mousemove", (event) => hover(event, name, canvas));
    canvas.addEventListener("mouseleave", () => { tooltip.style.display = "none"; });
    card.appendChild(canvas);
  }
  card.appendChild(el("ol", { class: "decisions", reversed: "" }));
  document.getElementById("charts").appendChild(card);
  return card;
}

function xOf(t, now, width) { return width - ((now - t) / WINDOW_S) * width; }

function draw(name) {
  const series = seriesOf(name);
  const card = chartCard(name);
  const now = Date.now() / 1000;
  for (const [key, , color] of METRICS) {
    const canvas = card.querySelector(`canvas[data-metric="${key}"]`);
    const width = canvas.clientWidth, height = canvas.clientHeight;
    canvas.width = width * devicePixelRatio; canvas.height = height * devicePixelRatio;
    const g = canvas.getContext("2d");
    g.scale(devicePixelRatio, devicePixelRatio);
    const points = series.points.filter((p) => now - p.t <= WINDOW_S && p[key] !== null);
    const top = Math.max(1, ...points.map((p) => p[key])) * 1.15;
    g.strokeStyle = "#d9822b"; g.setLineDash([4, 3]);
    for (const d of series.decisions) {
      if (now - d.t > WINDOW_S) continue;
      const x = xOf(d.t, now, width);
      g.beginPath(); g.moveTo(x, 0); g.lineTo(x, height); g.stroke();
    }
    g.setLineDash([]); g.strokeStyle = color; g.lineWidth = 1.5; g.beginPath();
    points.forEach((p, i) => {
      const x = xOf(p.t, now, width), y = height - (p[key] / top) * (height - 4) - 2;
      if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
    });
    g.stroke();
    g.fillStyle = "#5a6372"; g.font = "10px sans-serif";
    g.fillText(text(points.length ? points[points.length - 1][key] : null), 4, 11);
  }
  const list = card.querySelector(".decisions");
  list.replaceChildren(...series.decisions.slice(-5).reverse().map((d) => el("li", {
    class: "decision", text: `${new Date(d.t * 1000).toLocaleTimeString()} ${d.previous} → ${d.desired}${d.panic ? " (panic)" : ""}: ${d.reason}`,
  })));
}

function hover(event, name, canvas) {
  const now = Date.now() / 1000, rect = canvas.getBoundingClientRect();
  let near = null, best = 6;
  for (const d of seriesOf(name).decisions) {
    const distance = Math.abs(xOf(d.t, now, rect.width) - (event.clientX - rect.left));
    if (distance <= best) { near = d; best = distance; }
  }
  if (!near) { tooltip.style.display = "none"; return; }
  tooltip.textContent = `${near.previous} → ${near.desired}: ${near.reason}`;
  tooltip.style.left = `${event.clientX + 12}px`; tooltip.style.top = `${event.clientY + 12}px`;
  tooltip.style.display = "block";
}

async function connect() {
  const session = await fetch("/ui/session", { credentials: "same-origin" });
  if (session.status !== 200) {
    document.getElementById("status").textContent = "log in with a read token";
    document.getElementById("login").style.display = "flex";
    return;
  }
  const source = new EventSource("/ui/stream");
  const status = document.getElementById("status");
  source.onopen = () => { status.textContent = "live"; };
  source.onerror = () => { status.textContent = "reconnecting…"; };
  source.addEventListener("snapshot", (message) => {
    const snap = JSON.parse(message.data);
    state.series = snap.series; state.events = snap.events;
    renderNodes(snap.nodes); renderEvents();
  });
  source.addEventListener("tick", (message) => {
    const tick = JSON.parse(message.data);
    state.latest = tick.functions;
    for (const [name, f] of Object.entries(tick.functions)) {
      const series = seriesOf(name);
      series.points.push(f);
      if (series.points.length > 600) series.points.shift();
    }
    for (const card of document.querySelectorAll(".chart")) {
      if (!(card.dataset.function in tick.functions)) card.remove();
    }
    renderFunctions(); renderNodes(tick.nodes);
    Object.keys(tick.functions).forEach(draw);
  });
  source.addEventListener("decision", (message) => {
    const d = JSON.parse(message.data);
    seriesOf(d.function).decisions.push(d);
  });
  source.addEventListener("event", (message) => {
    state.events.push(JSON.parse(message.data));
    if (state.events.length > 200) state.events.shift();
    renderEvents();
  });
}

document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const field = document.getElementById("token");
  const answer = await fetch("/ui/login", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token: field.value }),
  });
  field.value = "";
  if (answer.status !== 204) {
    document.getElementById("status").textContent = "that token may not read: try another";
    return;
  }
  document.getElementById("login").style.display = "none";
  connect();
});
connect();
