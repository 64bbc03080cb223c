/* The territory workbench page: the plan on a Leaflet map, the figures beside it, edits sent to the server.
 *
 * Accounts are drawn on one canvas from columns (no object per account), so 100,000 of them pan and zoom
 * smoothly; selection works on units (an account family or a geographic unit moves as a whole). Every figure
 * comes from the server (territory/workbench.py): the page only draws what it is told. */
"use strict";

const fmt = (value, digits = 0) =>
  value === null || value === undefined || Number.isNaN(value)
    ? "–"
    : Number(value).toLocaleString("en-US", { minimumFractionDigits: 0, maximumFractionDigits: digits });
const signed = (value, digits = 1) => {
  const shown = Number(Number(value).toFixed(digits));  // -0.01 shows as 0, not -0
  return shown === 0 ? "0" : (shown > 0 ? "+" : "") + fmt(shown, digits);
};
const esc = (text) => String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const $ = (id) => document.getElementById(id);

const wb = {
  data: null, version: 0, unitRep: null, pins: null, selected: null, selectedCount: 0, target: 0,
  job: null, events: null, lastKpis: null, areaLayers: {}, xy: null,
};
window.workbench = wb;

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  const payload = response.headers.get("content-type")?.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    const error = new Error(payload.detail || String(payload));
    error.status = response.status;
    throw error;
  }
  return payload;
}

function say(text, kind = "") {
  const box = $("message");
  box.textContent = text;
  box.className = "small " + kind;
}

// ------------------------------------------------------------------ the map
const map = L.map("map", { preferCanvas: true, boxZoom: false, zoomSnap: 0.25, zoomControl: true, attributionControl: false });
map.createPane("areas").style.zIndex = 350;

// Accounts as dots on one canvas, redrawn after every move, zoom or change of plan.
const Dots = L.Layer.extend({
  onAdd(m) {
    this._canvas = L.DomUtil.create("canvas", "dots-layer");
    m.getPanes().overlayPane.appendChild(this._canvas);
    m.on("moveend zoomend resize", this._reset, this);
    this._reset();
  },
  onRemove(m) {
    this._canvas.remove();
    m.off("moveend zoomend resize", this._reset, this);
  },
  _reset() {
    const size = map.getSize();
    const ratio = window.devicePixelRatio || 1;
    L.DomUtil.setPosition(this._canvas, map.containerPointToLayerPoint([0, 0]));
    this._canvas.width = size.x * ratio;
    this._canvas.height = size.y * ratio;
    this._canvas.style.width = size.x + "px";
    this._canvas.style.height = size.y + "px";
    this.redraw();
  },
  redraw() {
    const a = wb.data.accounts, n = a.lat.length, reps = wb.data.reps;
    const zoom = map.getZoom(), scale = 256 * Math.pow(2, zoom);
    const ref = map.latLngToContainerPoint([0, 0]);
    const x = wb.xy || (wb.xy = { x: new Float32Array(n), y: new Float32Array(n) });
    const grow = Math.min(Math.max((zoom - 5) * 0.5, 0), 4);
    const ctx = this._canvas.getContext("2d");
    const ratio = window.devicePixelRatio || 1;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, this._canvas.width, this._canvas.height);
    const byRep = reps.map(() => []);
    const w = this._canvas.width / ratio, h = this._canvas.height / ratio;
    for (let i = 0; i < n; i++) {
      const px = wb.mx[i] * scale + ref.x, py = wb.my[i] * scale + ref.y;
      x.x[i] = px; x.y[i] = py;
      if (px < -10 || py < -10 || px > w + 10 || py > h + 10) continue;
      byRep[wb.unitRep[a.unit[i]]].push(i);
    }
    ctx.globalAlpha = 0.85;
    byRep.forEach((rows, r) => {
      ctx.fillStyle = reps[r].color;
      ctx.beginPath();
      for (const i of rows) {
        const rad = wb.radius[i] + grow;
        ctx.moveTo(x.x[i] + rad, x.y[i]);
        ctx.arc(x.x[i], x.y[i], rad, 0, 2 * Math.PI);
      }
      ctx.fill();
    });
    ctx.globalAlpha = 1;
    // pinned units: a white centre; selected units: a black ring
    ctx.fillStyle = "#fff";
    ctx.beginPath();
    byRep.forEach((rows) => { for (const i of rows) if (wb.pins[a.unit[i]] >= 0) { ctx.moveTo(x.x[i] + 1.6, x.y[i]); ctx.arc(x.x[i], x.y[i], 1.6, 0, 2 * Math.PI); } });
    ctx.fill();
    if (wb.selectedCount) {
      ctx.strokeStyle = "#000";
      ctx.lineWidth = 2;
      ctx.beginPath();
      byRep.forEach((rows) => { for (const i of rows) if (wb.selected[a.unit[i]]) { const rad = wb.radius[i] + grow + 2; ctx.moveTo(x.x[i] + rad, x.y[i]); ctx.arc(x.x[i], x.y[i], rad, 0, 2 * Math.PI); } });
      ctx.stroke();
    }
  },
});
const dots = new Dots();

function nearestAccount(point, within = 9) {
  const x = wb.xy, n = wb.data.accounts.lat.length;
  let best = -1, bestD = within * within;
  for (let i = 0; i < n; i++) {
    const dx = x.x[i] - point.x, dy = x.y[i] - point.y, d = dx * dx + dy * dy;
    if (d <= bestD) { bestD = d; best = i; }
  }
  return best;
}

function homeIcon(color) {
  return L.divIcon({
    className: "home-base", iconSize: [22, 22], iconAnchor: [11, 11],
    html: `<svg viewBox="0 0 24 24" width="22" height="22"><path d="M12 1.8l3.1 6.5 7.1.9-5.2 4.9 1.3 7-6.3-3.4-6.3 3.4 1.3-7-5.2-4.9 7.1-.9z" fill="${color}" stroke="#000" stroke-width="1.2"/></svg>`,
  });
}

// ------------------------------------------------------------------ selection
function setSelected(units, { add = false, toggle = false } = {}) {
  if (!add && !toggle) wb.selected.fill(0);
  for (const u of units) wb.selected[u] = toggle ? 1 - wb.selected[u] : 1;
  wb.selectedCount = wb.selected.reduce((s, v) => s + v, 0);
  showSelection();
  dots.redraw();
  restyleUnits();
}

function showSelection() {
  const a = wb.data.accounts;
  let accounts = 0;
  for (let i = 0; i < a.unit.length; i++) if (wb.selected[a.unit[i]]) accounts++;
  $("selection").textContent = wb.selectedCount
    ? `${fmt(accounts)} account${accounts === 1 ? "" : "s"} selected` + (wb.data.unit_ids ? ` in ${fmt(wb.selectedCount)} units` : "")
    : "nothing selected";
}

function selectedUnits() {
  const out = [];
  for (let u = 0; u < wb.selected.length; u++) if (wb.selected[u]) out.push(u);
  return out;
}

function tool() { return document.querySelector("input[name=tool]:checked").value; }

map.on("click", (event) => {
  if (tool() !== "click") return;
  const i = nearestAccount(event.containerPoint);
  const shift = event.originalEvent.shiftKey;
  if (i < 0) { if (!shift) setSelected([]); return; }
  setSelected([wb.data.accounts.unit[i]], { toggle: shift });
});

map.on("mousemove", (event) => {
  const i = nearestAccount(event.containerPoint, 6);
  if (i < 0) { map.closeTooltip(wb.tip); return; }
  const a = wb.data.accounts, rep = wb.data.reps[wb.unitRep[a.unit[i]]];
  const base = a.baseline[i] >= 0 ? wb.data.reps[a.baseline[i]].rep_id : a.baseline[i] === -2 ? "a departing rep" : "none";
  const pin = wb.pins[a.unit[i]] >= 0 ? ` · pinned` : "";
  const text = `<b>${esc(a.name[i])}</b> (${esc(a.id[i])})<br>${esc(a.segments[a.segment[i]])} · potential ${fmt(a.potential[i])}` +
    `<br>rep ${esc(rep.name)} (${esc(rep.rep_id)})${pin}<br>today: ${esc(base)}`;
  wb.tip = wb.tip || L.tooltip({ className: "account-tip", direction: "top", offset: [0, -6] });
  wb.tip.setLatLng([a.lat[i], a.lon[i]]).setContent(text);
  if (!map.hasLayer(wb.tip)) wb.tip.addTo(map);
});

// Box and lasso: drag on the map (the map does not pan while one of them is chosen).
(function dragSelect() {
  const container = map.getContainer();
  let start = null, path = [], box = null, svg = null;
  const inside = (poly, px, py) => {
    let hit = false;
    for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
      const [xi, yi] = poly[i], [xj, yj] = poly[j];
      if ((yi > py) !== (yj > py) && px < ((xj - xi) * (py - yi)) / (yj - yi) + xi) hit = !hit;
    }
    return hit;
  };
  container.addEventListener("mousedown", (event) => {
    if (tool() === "click" || event.button !== 0) return;
    const rect = container.getBoundingClientRect();
    start = [event.clientX - rect.left, event.clientY - rect.top];
    path = [start];
    if (tool() === "box") {
      box = L.DomUtil.create("div", "box-select", container);
    } else {
      svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
      svg.innerHTML = '<polygon fill="rgba(36,88,198,0.12)" stroke="#222" stroke-dasharray="4 3"/>';
      $("lasso-layer").appendChild(svg);
    }
    event.preventDefault();
    event.stopPropagation();
  }, true);
  window.addEventListener("mousemove", (event) => {
    if (!start) return;
    const rect = container.getBoundingClientRect();
    const p = [event.clientX - rect.left, event.clientY - rect.top];
    path.push(p);
    if (box) {
      Object.assign(box.style, { left: Math.min(p[0], start[0]) + "px", top: Math.min(p[1], start[1]) + "px",
        width: Math.abs(p[0] - start[0]) + "px", height: Math.abs(p[1] - start[1]) + "px" });
    } else if (svg) {
      svg.firstChild.setAttribute("points", path.map((q) => q.join(",")).join(" "));
    }
  });
  window.addEventListener("mouseup", (event) => {
    if (!start) return;
    const end = path[path.length - 1], a = wb.data.accounts, units = new Set();
    if (box) {
      const [x0, x1] = [Math.min(start[0], end[0]), Math.max(start[0], end[0])];
      const [y0, y1] = [Math.min(start[1], end[1]), Math.max(start[1], end[1])];
      for (let i = 0; i < a.unit.length; i++) {
        if (wb.xy.x[i] >= x0 && wb.xy.x[i] <= x1 && wb.xy.y[i] >= y0 && wb.xy.y[i] <= y1) units.add(a.unit[i]);
      }
      box.remove();
    } else if (svg && path.length > 2) {
      const xs = path.map((q) => q[0]), ys = path.map((q) => q[1]);
      const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
      for (let i = 0; i < a.unit.length; i++) {
        const px = wb.xy.x[i], py = wb.xy.y[i];
        if (px >= x0 && px <= x1 && py >= y0 && py <= y1 && inside(path, px, py)) units.add(a.unit[i]);
      }
    }
    if (svg) svg.remove();
    box = svg = start = null;
    setSelected([...units], { add: event.shiftKey });
  });
})();

document.querySelectorAll("input[name=tool]").forEach((input) => input.addEventListener("change", () => {
  const t = tool();
  map.getContainer().classList.toggle("tool-box", t === "box");
  map.getContainer().classList.toggle("tool-lasso", t === "lasso");
  if (t === "click") map.dragging.enable(); else map.dragging.disable();
}));

// ------------------------------------------------------------------ filters
function buildFilters() {
  const box = $("filter-fields"), a = wb.data.accounts, reps = wb.data.reps;
  const field = (label, id, options) => {
    const select = `<select id="${id}"><option value="">any</option>${options.map(([v, t]) => `<option value="${esc(v)}">${esc(t)}</option>`).join("")}</select>`;
    box.insertAdjacentHTML("beforeend", `<label>${esc(label)} ${select}</label>`);
  };
  field("segment", "f-segment", a.segments.map((s, k) => [k, s]));
  const repOptions = reps.map((r, k) => [k, `${r.name} (${r.rep_id})`]);
  field("current rep", "f-baseline", repOptions);
  field("rep in plan", "f-rep", repOptions);
  Object.entries(wb.data.facets).forEach(([column, [labels]], n) => field(column, `f-facet-${n}`, labels.map((l, k) => [k, l || "(blank)"])));
  box.querySelectorAll("select").forEach((s) => s.addEventListener("change", countMatching));
}

function matchingUnits() {
  const a = wb.data.accounts, get = (id) => ($(id) && $(id).value !== "" ? Number($(id).value) : null);
  const seg = get("f-segment"), base = get("f-baseline"), rep = get("f-rep");
  const facets = Object.values(wb.data.facets).map(([, codes], n) => [codes, get(`f-facet-${n}`)]).filter(([, v]) => v !== null);
  const units = new Set();
  let accounts = 0;
  for (let i = 0; i < a.unit.length; i++) {
    if (seg !== null && a.segment[i] !== seg) continue;
    if (base !== null && a.baseline[i] !== base) continue;
    if (rep !== null && wb.unitRep[a.unit[i]] !== rep) continue;
    if (facets.some(([codes, v]) => codes[i] !== v)) continue;
    units.add(a.unit[i]);
    accounts++;
  }
  return { units: [...units], accounts };
}

function countMatching() {
  const { accounts } = matchingUnits();
  $("matching").textContent = `${fmt(accounts)} accounts match`;
}

// ------------------------------------------------------------------ figures
function renderKpis(kpis) {
  const previous = wb.lastKpis;
  wb.lastKpis = kpis;
  const balanced = kpis.columns.filter((c) => c.tolerance_pct !== null);
  const plain = kpis.columns.filter((c) => c.tolerance_pct === null && c.key !== "accounts");
  const head = ["<tr><th class='text'>rep</th>",
    ...balanced.map((c) => `<th title="load (deviation from target, tolerance ±${c.tolerance_pct} %)">${esc(c.key)}</th><th>±%</th>`),
    ...plain.map((c) => `<th>${esc(c.key)}</th>`),
    "<th title='workload-hour × km'>workload·km</th><th>mean km</th><th>+/−</th><th>pins</th></tr>"].join("");
  const cell = (row, key, digits, prevRow, cls = "") => {
    const changed = prevRow && prevRow[key] !== row[key] ? " changed" : "";
    return `<td class="${cls}${changed}" data-key="${key}">${fmt(row[key], digits)}</td>`;
  };
  const rows = kpis.rows.map((row, r) => {
    const prevRow = previous && previous.rows[r];
    const rep = wb.data.reps[r];
    return `<tr class="rep${r === wb.target ? " target" : ""}" data-rep="${r}" data-rep-id="${esc(row.rep_id)}">` +
      `<td class="text" title="${esc(row.rep_id)} · ${esc(row.segment)} · ${fmt(row.fte, 2)} FTE"><span class="swatch" style="background:${rep.color}"></span>${esc(row.name)} <span class="muted small">${esc(row.rep_id)}${row.fte !== 1 ? " · " + fmt(row.fte, 2) + " FTE" : ""}</span></td>` +
      balanced.map((c) => cell(row, c.key, 0, prevRow, row[c.key + "_out"] ? "out" : "") +
        `<td class="${row[c.key + "_out"] ? "out" : ""}" data-key="${c.key}_deviation_pct">${signed(row[c.key + "_deviation_pct"])}</td>`).join("") +
      plain.map((c) => cell(row, c.key, 0, prevRow)).join("") +
      cell(row, "workload_km", 0, prevRow) + cell(row, "mean_distance_km", 1, prevRow) +
      `<td>+${row.gained} / −${row.lost}</td><td>${row.pinned_units || ""}</td></tr>`;
  });
  const t = kpis.totals;
  const total = `<tr class="total"><td class="text">${esc(t.name)}, ${fmt(t.fte, 2)} FTE</td>` +
    balanced.map((c) => `<td>${fmt(t[c.key])}</td><td>max ${fmt(kpis.summary.max_deviation_pct[c.key], 1)}</td>`).join("") +
    plain.map((c) => `<td>${fmt(t[c.key])}</td>`).join("") +
    `<td>${fmt(t.workload_km)}</td><td>${fmt(t.mean_distance_km, 1)}</td><td>${fmt(t.gained)} moved</td><td>${t.pinned_units || ""}</td></tr>`;
  $("kpis").innerHTML = `<thead>${head}</thead><tbody>${rows.join("")}${total}</tbody>`;
  const s = kpis.summary;
  $("summary").innerHTML = [
    `<span class="${s.all_within_tolerance ? "good" : "bad"}">${s.all_within_tolerance ? "every rep within tolerance" : "out of tolerance"}</span>`,
    `<span>objective ${fmt(s.objective)}</span>`, `<span>bound ${fmt(s.bound)}</span>`,
    `<span>gap ${s.gap_pct === null ? "–" : fmt(s.gap_pct, 2) + " %"}</span>`,
    `<span>moved ${fmt(s.accounts_moved)} accounts (${fmt(s.potential_moved_pct, 1)} % of potential) against ${esc(s.baseline)}</span>`,
    `<span>${fmt(s.pinned_accounts)} accounts pinned</span>`,
    s.disconnected && s.disconnected.length ? `<span class="bad">not one connected area: ${s.disconnected.map(esc).join(", ")}</span>` : "",
  ].join("");
  $("status").textContent = `${wb.data.name} · ${s.status} · version ${wb.version}`;
  document.querySelectorAll("#kpis tr.rep").forEach((tr) => tr.addEventListener("click", () => chooseTarget(Number(tr.dataset.rep))));
}

function chooseTarget(r) {
  wb.target = r;
  $("rep").value = String(r);
  document.querySelectorAll("#kpis tr.rep").forEach((tr) => tr.classList.toggle("target", Number(tr.dataset.rep) === r));
}

function applyUpdate(update) {
  wb.version = update.version;
  const touched = new Set();
  if (update.units) {
    update.units.forEach((u, k) => {
      touched.add(wb.unitRep[u]);
      wb.unitRep[u] = update.reps[k];
      wb.pins[u] = update.pins[k];
      touched.add(update.reps[k]);
    });
  }
  renderKpis(update.kpis);
  $("undo").disabled = !update.undo;
  $("redo").disabled = !update.redo;
  dots.redraw();
  restyleUnits();
  refreshAreas([...touched]);
  showSelection();
  countMatching();
}

// Geographic units (polygons, hexagons, Voronoi cells): each filled in its rep's colour; a click selects it.
async function drawUnits() {
  const shapes = await api("api/units");
  window.areasDrawn = (window.areasDrawn || 0) + 1;
  if (!shapes.features.length) return;
  wb.unitLayer = L.geoJSON(shapes, {
    pane: "areas",
    style: (feature) => unitStyle(feature.properties.unit),
    onEachFeature: (feature, layer) => layer.on("click", (event) => {
      if (tool() !== "click" || nearestAccount(event.containerPoint) >= 0) return;  // an account's click wins
      L.DomEvent.stopPropagation(event);
      setSelected([feature.properties.unit], { toggle: event.originalEvent.shiftKey });
    }),
  }).addTo(map);
}

function unitStyle(unit) {
  const color = wb.data.reps[wb.unitRep[unit]].color;
  const picked = wb.selected[unit] === 1;
  return { color: picked ? "#000" : color, weight: picked ? 2 : 0.5, opacity: 0.8, fillColor: color, fillOpacity: 0.25 };
}

function restyleUnits() {
  if (wb.unitLayer) wb.unitLayer.eachLayer((layer) => layer.setStyle(unitStyle(layer.feature.properties.unit)));
}

async function refreshAreas(rows) {
  if ((rows && !rows.length) || wb.data.unit_ids) return;  // units are filled in their rep's colour instead
  const query = rows ? "?reps=" + rows.map((r) => encodeURIComponent(wb.data.reps[r].rep_id)).join(",") : "";
  const areas = await api("api/areas" + query);
  for (const feature of areas.features) {
    const r = feature.properties.rep;
    if (wb.areaLayers[r]) map.removeLayer(wb.areaLayers[r]);
    delete wb.areaLayers[r];
    if (!feature.geometry) continue;
    const color = wb.data.reps[r].color;
    wb.areaLayers[r] = L.geoJSON(feature, { pane: "areas", interactive: false,
      style: { color, weight: 2, opacity: 0.9, fillColor: color, fillOpacity: 0.06 } }).addTo(map);
  }
  window.areasDrawn = (window.areasDrawn || 0) + 1;
}

async function edit(path, body, done) {
  try {
    const update = await api(path, { ...body, version: wb.version });
    applyUpdate(update);
    say(done, "ok");
    return update;
  } catch (error) {
    say(error.message + (error.status === 409 && /reload/.test(error.message) ? " " : ""), "error");
    if (error.status === 409 && /reload/.test(error.message)) offerReload();
    return null;
  }
}

function offerReload() {
  if ($("reload")) return;
  $("message").insertAdjacentHTML("afterend", ' <button id="reload" type="button">Reload</button>');
  $("reload").addEventListener("click", () => window.location.reload());
}

$("assign").addEventListener("click", () => {
  const units = selectedUnits();
  if (!units.length) { say("select accounts first: click, box or lasso on the map, or a filter", "error"); return; }
  const rep = wb.data.reps[Number($("rep").value)];
  edit("api/assign", { units, rep: rep.rep_id }, `moved to ${rep.name} and pinned`);
});
$("unpin").addEventListener("click", () => edit("api/unpin", { units: selectedUnits() }, "pins released"));
$("undo").addEventListener("click", () => edit("api/undo", {}, "undone"));
$("redo").addEventListener("click", () => edit("api/redo", {}, "redone"));
$("clear").addEventListener("click", () => setSelected([]));
$("rep").addEventListener("change", () => chooseTarget(Number($("rep").value)));
$("select-matching").addEventListener("click", () => setSelected(matchingUnits().units));
document.addEventListener("keydown", (event) => {
  if (!(event.ctrlKey || event.metaKey) || event.target.tagName === "INPUT") return;
  if (event.key === "z") { event.preventDefault(); $("undo").click(); }
  if (event.key === "y") { event.preventDefault(); $("redo").click(); }
});

// ------------------------------------------------------------------ re-optimise
function budget() { return $("no-budget").checked ? null : Number($("budget").value); }
function showBudget() { $("budget-value").textContent = $("no-budget").checked ? "no limit" : fmt(Number($("budget").value)) + " accounts"; $("budget").disabled = $("no-budget").checked; }
$("budget").addEventListener("input", showBudget);
$("no-budget").addEventListener("change", showBudget);

$("solve").addEventListener("click", async () => {
  const limit = $("time-limit").value ? Number($("time-limit").value) : null;
  $("proposal").hidden = true;
  try {
    const job = await api("api/solve", { budget: budget(), time_limit_s: limit, version: wb.version });
    wb.job = job.job;
  } catch (error) { say(error.message, "error"); return; }
  $("solve").disabled = true;
  $("cancel").disabled = false;
  $("progress").textContent = "starting...";
  const events = new EventSource(`api/solve/${wb.job}/events`);
  wb.events = events;
  events.addEventListener("progress", (message) => {
    const e = JSON.parse(message.data);
    $("progress").textContent = `${fmt(e.seconds, 1)} s  plan ${fmt(e.objective)}  bound ${fmt(e.bound)}` + (e.gap_pct === null ? "" : `  gap ${fmt(e.gap_pct, 2)} %`);
  });
  events.addEventListener("end", async (message) => {
    events.close();
    const end = JSON.parse(message.data);
    $("solve").disabled = false;
    $("cancel").disabled = true;
    if (end.state !== "done") {
      $("progress").textContent = end.message || end.state;
      $("progress").classList.add("error");
      return;
    }
    $("progress").classList.remove("error");
    showProposal(await api(`api/solve/${wb.job}/changes`));
  });
});
$("cancel").addEventListener("click", () => api(`api/solve/${wb.job}/cancel`, {}).catch((e) => say(e.message, "error")));

function showProposal(p) {
  $("proposal").hidden = false;
  $("proposal-title").textContent = `${p.status}${p.interrupted ? " (stopped early)" : ""}: ${fmt(p.accounts_moved)} accounts would move`;
  const plans = Object.keys(p.kpis[0] || {}).filter((k) => k !== "kpi");
  const value = (v) => (typeof v === "number" ? fmt(v, 2) : v === null ? "–" : esc(v));
  $("proposal-kpis").innerHTML = `<thead><tr><th class="text">KPI</th>${plans.map((x) => `<th>${esc(x)}</th>`).join("")}</tr></thead><tbody>` +
    p.kpis.map((row) => `<tr><td class="text">${esc(row.kpi)}</td>${plans.map((x) => `<td>${value(row[x])}</td>`).join("")}</tr>`).join("") + "</tbody>";
  const cols = ["account_id", "name", "segment", "from_rep", "to_rep", "potential", "workload"];
  $("proposal-changes").innerHTML = `<thead><tr>${cols.map((c) => `<th class="text">${c}</th>`).join("")}</tr></thead><tbody>` +
    p.changes.map((row) => `<tr>${cols.map((c) => `<td class="${typeof row[c] === "number" ? "" : "text"}">${value(row[c])}</td>`).join("")}</tr>`).join("") + "</tbody>";
}

$("accept").addEventListener("click", async () => {
  const update = await edit(`api/solve/${wb.job}/accept`, {}, "the new plan is in place (undo takes it back)");
  if (update) $("proposal").hidden = true;
});
$("reject").addEventListener("click", async () => {
  await api(`api/solve/${wb.job}/reject`, {}).catch((e) => say(e.message, "error"));
  $("proposal").hidden = true;
  say("proposal dropped");
});

// ------------------------------------------------------------------ save and compare
$("save").addEventListener("click", async () => {
  try {
    const saved = await api("api/save", { folder: $("folder").value || null, version: wb.version });
    say(`saved to ${saved.folder} (${saved.files.join(", ")})`, "ok");
  } catch (error) {
    say(error.message, "error");
  }
});
$("compare").addEventListener("click", () => {
  const folder = $("other").value.trim();
  if (!folder) { say("give the folder of another plan", "error"); return; }
  $("compare-title").textContent = `This plan beside ${folder}`;
  $("compare-frame").src = "compare?folder=" + encodeURIComponent(folder);
  $("compare-view").hidden = false;
});
$("close-compare").addEventListener("click", () => { $("compare-view").hidden = true; $("compare-frame").src = "about:blank"; });

// ------------------------------------------------------------------ start
async function start() {
  const mark = (name) => { wb.timings[name] = Math.round(performance.now()); };
  wb.timings = {};
  const data = await api("api/state");
  mark("data");
  wb.data = data;
  wb.version = data.version;
  wb.unitRep = Int32Array.from(data.unit_rep);
  wb.pins = Int32Array.from(data.pins);
  wb.selected = new Uint8Array(data.unit_rep.length);
  const a = data.accounts, n = a.lat.length;
  wb.mx = new Float64Array(n); wb.my = new Float64Array(n); wb.radius = new Float32Array(n);
  const top = a.potential.reduce((m, v) => (v > m ? v : m), 1);
  for (let i = 0; i < n; i++) {
    const p = map.options.crs.projection.project(L.latLng(a.lat[i], a.lon[i]));
    const t = map.options.crs.transformation.transform(p, 1);
    wb.mx[i] = t.x; wb.my[i] = t.y;
    wb.radius[i] = 2 + 3.5 * Math.sqrt(Math.max(a.potential[i], 0) / top);
  }
  // the map's origin as a Leaflet point: containerPoint = world point * scale + (container point of 0,0)
  const fix = map.options.crs.transformation.transform(map.options.crs.projection.project(L.latLng(0, 0)), 1);
  wb.mx = wb.mx.map((v) => v - fix.x); wb.my = wb.my.map((v) => v - fix.y);
  mark("projected");
  $("title").textContent = data.name;
  $("folder").value = data.default_folder;
  $("rep").innerHTML = data.reps.map((r, k) => `<option value="${k}">${esc(r.name)} (${esc(r.rep_id)}, ${esc(r.segment)})</option>`).join("");
  $("budget").max = String(Math.min(data.max_budget, 5000));
  $("budget").value = String(Math.min(50, data.max_budget));
  showBudget();
  buildFilters();
  const lats = a.lat.concat(data.reps.map((r) => r.lat).filter((v) => v !== null));
  const lons = a.lon.concat(data.reps.map((r) => r.lon).filter((v) => v !== null));
  const low = (values) => values.reduce((m, v) => (v < m ? v : m), Infinity);
  const high = (values) => values.reduce((m, v) => (v > m ? v : m), -Infinity);
  map.fitBounds([[low(lats), low(lons)], [high(lats), high(lons)]], { padding: [20, 20] });
  data.reps.forEach((r) => {
    if (r.lat === null || r.lon === null) return;
    L.marker([r.lat, r.lon], { icon: homeIcon(r.color), keyboard: false })
      .bindTooltip(`${esc(r.name)} (${esc(r.rep_id)}) · ${esc(r.segment)} · ${fmt(r.fte, 2)} FTE`).addTo(map);
  });
  mark("controls");
  dots.addTo(map);
  mark("drawn");
  applyUpdate(data);
  chooseTarget(0);
  mark("ready");
  window.workbenchReady = true;
  if (data.unit_ids) await drawUnits(); else await refreshAreas(null);
}

// For tests and scripts: the account drawn nearest a page point (its id, or null) ...
wb.accountAt = (x, y) => {
  const box = map.getContainer().getBoundingClientRect();
  const i = nearestAccount({ x: x - box.left, y: y - box.top });
  return i < 0 ? null : wb.data.accounts.id[i];
};
// ... and where an account is on the screen (page coordinates), to click it.
wb.screenPoint = (accountId) => {
  const i = wb.data.accounts.id.indexOf(accountId);
  if (i < 0) return null;
  const p = map.latLngToContainerPoint([wb.data.accounts.lat[i], wb.data.accounts.lon[i]]);
  const box = map.getContainer().getBoundingClientRect();
  return [box.left + p.x, box.top + p.y];
};

start().catch((error) => { $("status").textContent = "could not load the plan: " + error.message; $("status").classList.add("error"); });
