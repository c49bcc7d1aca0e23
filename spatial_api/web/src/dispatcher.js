// The dispatcher's desk: a live map of open cases (new cases and transitions arrive by SSE
// within a second or two; overdue ones ringed red) with the heat, hotspot, grid ownership and
// inspector position layers, the filtered case queue with the dispatcher's actions (each with
// If-Match), and the metrics panel.
import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "./api.js";
import { language, t, when } from "./i18n.js";
import { loadStyle } from "./map.js";
import { followEvents } from "./events.js";
import { CaseView } from "./cases.js";
import { html, MapBox, Message, useMessage } from "./ui.js";

const OPEN = ["reported", "registered", "dispatched", "in_progress", "resolved", "verified", "parked"];
const SOURCE = "open-cases";

function feature(c) {
  return {
    type: "Feature",
    id: c.id,
    geometry: c.location,
    properties: { id: c.id, status: c.status, category: c.category_code, overdue: !!c.overdue },
  };
}

/** The evaluation's rates shown in the panel, with their Chinese names (as GB/T 30428.4). */
const RATES = [
  ["on_time_registration_rate", "按时立案率"], ["on_time_dispatch_rate", "按时派遣率"],
  ["accurate_dispatch_rate", "准确派遣率"], ["on_time_handling_rate", "按期处置率"],
  ["on_time_verification_rate", "按期核查率"], ["extension_rate", "延期率"],
  ["rework_rate", "返工率"], ["closing_rate", "结案率"], ["on_time_closing_rate", "按期结案率"],
  ["self_handling_rate", "自行处置率"],
];

const pct = (v) => (v === null || v === undefined ? "—" : `${(v * 100).toFixed(1)}%`);
const MONTHS = 6;

/** 结案率 and 按期结案率 of each of the last months, as bars. */
function Trend() {
  const [months, setMonths] = useState([]);
  useEffect(() => {
    const now = new Date();
    const starts = [...Array(MONTHS + 1).keys()].map((i) => new Date(now.getFullYear(), now.getMonth() - MONTHS + 1 + i, 1));
    Promise.all(starts.slice(0, MONTHS).map((start, i) =>
      api(`/incidents/metrics?from=${start.toISOString()}&to=${starts[i + 1].toISOString()}`)
        .then(({ data }) => ({ label: `${start.getMonth() + 1}`, ...data.total })),
    )).then(setMonths, () => {});
  }, []);
  const w = 28;
  return html`<svg class="trend" viewBox=${`0 0 ${MONTHS * w * 1.5} 110`} role="img">
    ${months.map((m, i) => html`<g transform=${`translate(${i * w * 1.5},0)`}>
      <rect x="0" y=${100 - (m.closing_rate ?? 0) * 100} width=${w / 2} height=${(m.closing_rate ?? 0) * 100} fill="#0b63c5"><title>${t("closeRate")} ${pct(m.closing_rate)}</title></rect>
      <rect x=${w / 2} y=${100 - (m.on_time_closing_rate ?? 0) * 100} width=${w / 2} height=${(m.on_time_closing_rate ?? 0) * 100} fill="#1b998b"><title>${t("onTimeRate")} ${pct(m.on_time_closing_rate)}</title></rect>
      <text x="0" y="110" font-size="9">${m.label}</text></g>`)}
  </svg>`;
}

function Metrics() {
  const [by, setBy] = useState("department");
  const [rows, setRows] = useState([]);
  const [evaluation, setEvaluation] = useState(null);
  const [message, say] = useMessage();
  useEffect(() => {
    api(`/incidents/metrics?group_by=${by}`).then(({ data }) => setRows([...data.groups, { ...data.total, label: t("all") }]), () => {});
  }, [by]);
  function evaluate() {
    api(`/incidents/evaluation?group_by=${by === "category" ? "department" : by}`).then(
      ({ data }) => setEvaluation(data),
      (error) => say(error.message, true),
    );
  }
  const evaluated = evaluation
    ? [...evaluation.groups.map((g) => ({ ...g, row: String(g.key) })), { ...evaluation.total, label: t("all"), row: "total" }]
    : [];
  return html`<section class="metrics"><h3>${t("metrics")}
    <select value=${by} onChange=${(e) => setBy(e.target.value)}>
      ${["department", "category", "district"].map((g) => html`<option value=${g}>${t(g)}</option>`)}</select></h3>
    <table>
    <thead><tr><th></th><th>${t("closeRate")}</th><th>${t("onTimeRate")}</th><th>${t("reworkRate")}</th></tr></thead>
    <tbody>${rows.map((r) => html`<tr><td>${r.label ?? r.key}</td><td>${pct(r.closing_rate)}</td>
      <td>${pct(r.on_time_closing_rate)}</td><td>${pct(r.rework_rate)}</td></tr>`)}</tbody></table>
    <${Trend} />
    <button class="link" onClick=${evaluate}>${t("evaluation")}</button>
    <${Message} ...${message} />
    ${evaluation ? html`<h3>${t("evaluation")}</h3><table class="evaluation"><thead><tr><th>${t("group")}</th>
      <th>${t("score")}</th><th>${t("grade")}</th>${RATES.map(([, label]) => html`<th>${label}</th>`)}</tr></thead>
      <tbody>${evaluated.map((r) => html`<tr data-key=${r.row}><td>${r.label ?? r.key}</td>
        <td class="score">${r.score === null ? "—" : r.score.toFixed(1)}</td>
        <td class=${`grade ${r.grade ?? ""}`}>${r.grade ?? "—"}</td>
        ${RATES.map(([rate]) => html`<td data-rate=${rate}>${pct(r.rates[rate])}</td>`)}</tr>`)}</tbody></table>` : null}
  </section>`;
}

/** Grid coverage and each inspector's workload (GET /grid/coverage), heaviest first. */
function Workload() {
  const [data, setData] = useState(null);
  useEffect(() => {
    api("/grid/coverage?limit=0").then(({ data }) => setData(data), () => {});
  }, []);
  if (!data) return null;
  const top = [...data.inspectors].sort((a, b) => b.workload - a.workload).slice(0, 15);
  const most = top[0]?.workload || 1;
  return html`<section class="workload"><h3>${t("workload")}</h3>
    <p><span class="assigned">${data.assigned_cells}</span> / <span class="total">${data.total_cells}</span>
      ${t("cell")} · ${t("unassigned")} ${data.unassigned_cells} · ${t("balance")} ${data.balance?.toFixed(2) ?? "—"}</p>
    <table><tbody>${top.map((i) => html`<tr><td>${i.name ?? i.id}</td><td>${i.cells}</td>
      <td><span class="bar" style=${`width:${(100 * i.workload) / most}%`}></span></td></tr>`)}</tbody></table>
  </section>`;
}

/** The city style's incident heat layers (open cases counted per H3 cell, the cell size
 * following the zoom). */
const HEAT = ["incidents-hex", "incidents-hex-overdue"];
const OWNERSHIP = "grid-ownership";
const POSITIONS = "inspector-positions";

/**
 * The `hotspots` style (the Gi* cells stored by POST /analytics/hotspots/refresh, as tiles the
 * API serves to the roles that may read them; it judges every request): its sources and layers
 * added once under the open cases, shown or hidden. Resolves to the style's legend (metadata "cityhex:legend").
 */
async function hotspots(map, on) {
  const style = structuredClone(await loadStyle("hotspots"));
  const layers = style.layers.filter((l) => l.type !== "background");
  for (const [id, source] of Object.entries(style.sources)) if (!map.getSource(id)) map.addSource(id, source);
  for (const layer of layers) {
    if (!map.getLayer(layer.id)) map.addLayer(layer, SOURCE);
    map.setLayoutProperty(layer.id, "visibility", on ? "visible" : "none");
  }
  return style.metadata?.["cityhex:legend"] ?? [];
}

/** A style legend's entries (colour and bilingual label). */
function Legend({ title, items }) {
  return html`<div class="legend"><strong>${title}</strong><ul>${items.map((i) => html`<li>
    <span class="swatch" style=${`background:${i.color}`}></span> ${i.label[language()] ?? i.label.en}</li>`)}</ul></div>`;
}

/** Show or hide the extra layers: heat, grid ownership, inspectors' last positions. */
async function toggle(map, name, on) {
  if (name === "heat") {
    for (const id of HEAT)
      if (map.getLayer(id)) map.setLayoutProperty(id, "visibility", on ? "visible" : "none");
  } else if (name === "ownership") {
    if (!map.getLayer(OWNERSHIP))
      map.addLayer({ id: OWNERSHIP, type: "fill", source: "public", "source-layer": "grid", minzoom: 12,
        paint: { "fill-opacity": 0.35, "fill-color": ["match", ["%", ["coalesce", ["get", "inspector_id"], 0], 6],
          0, "#e41a1c", 1, "#377eb8", 2, "#4daf4a", 3, "#984ea3", 4, "#ff7f00", "#a65628"] } }, SOURCE);
    map.setLayoutProperty(OWNERSHIP, "visibility", on ? "visible" : "none");
  } else if (name === "positions") {
    if (!on) return map.getLayer(POSITIONS) && map.setLayoutProperty(POSITIONS, "visibility", "none");
    const { data: collection } = await api("/patrol/live");
    if (map.getSource(POSITIONS)) map.getSource(POSITIONS).setData(collection);
    else {
      map.addSource(POSITIONS, { type: "geojson", data: collection });
      map.addLayer({ id: POSITIONS, type: "circle", source: POSITIONS,
        paint: { "circle-radius": 5, "circle-color": "#111", "circle-stroke-color": "#fff", "circle-stroke-width": 2 } });
    }
    map.setLayoutProperty(POSITIONS, "visibility", "visible");
    return collection.features;
  }
  return null;
}

/** The dispatcher's screen. */
export function Dispatcher() {
  const [cases, setCases] = useState(new Map());
  const [status, setStatus] = useState("");
  const [category, setCategory] = useState("");
  const [district, setDistrict] = useState("");
  const [department, setDepartment] = useState("");
  const [since, setSince] = useState("");
  const [shownLayers, setShownLayers] = useState({ heat: true, hotspots: false, ownership: false, positions: false });
  const [legend, setLegend] = useState(null); // the hotspot legend, while they are shown
  const [open, setOpen] = useState(null);
  const [live, setLive] = useState(false);
  const [positions, setPositions] = useState(null); // inspectors' last fixes, when shown
  const [message, say] = useMessage();
  const map = useRef(null);
  async function load() {
    const { data } = await api(`/incidents?status=${OPEN.join(",")}&sort=newest&limit=1000`);
    setCases(new Map(data.items.map((c) => [c.id, c])));
  }
  useEffect(() => {
    load().catch((e) => say(e.message, true));
    const stop = new AbortController();
    followEvents(
      ({ data }) =>
        setCases((old) => {
          const next = new Map(old);
          const known = old.get(data.incident_id) ?? {
            id: data.incident_id,
            category_code: data.category_code,
            location: { type: "Point", coordinates: [data.lon, data.lat] },
          };
          next.set(data.incident_id, { ...known, status: data.to, deadline: data.deadline });
          return next;
        }),
      () => setLive(true),
      stop.signal,
    );
    return () => stop.abort();
  }, []);
  useEffect(() => {
    const source = map.current?.getSource(SOURCE);
    source?.setData({ type: "FeatureCollection", features: [...cases.values()].map(feature) });
  }, [cases]);
  function onMap(m) {
    m.addSource(SOURCE, { type: "geojson", data: { type: "FeatureCollection", features: [...cases.values()].map(feature) } });
    m.addLayer({ id: SOURCE, type: "circle", source: SOURCE, paint: {
      "circle-radius": 6,
      "circle-color": ["match", ["get", "status"], "reported", "#d7263d", "registered", "#f49d37",
        "dispatched", "#3f88c5", "in_progress", "#1b998b", "resolved", "#6a4c93", "#888"],
      "circle-stroke-width": ["case", ["get", "overdue"], 3, 1],
      "circle-stroke-color": ["case", ["get", "overdue"], "#ff0000", "#ffffff"] } });
    m.on("click", SOURCE, (e) => setOpen(e.features[0].properties.id));
    map.current = m;
  }
  const distinct = (field) => [...new Set([...cases.values()].map((c) => c[field]).filter((v) => v != null))].sort((a, b) => a - b);
  const shown = [...cases.values()]
    .filter((c) => OPEN.includes(c.status))
    .filter((c) => !status || c.status === status)
    .filter((c) => !category || c.category_code.startsWith(category))
    .filter((c) => !district || String(c.district_id) === district)
    .filter((c) => !department || String(c.department_id) === department)
    .filter((c) => !since || !c.reported_at || c.reported_at >= since)
    .sort((a, b) => b.id - a.id);
  return html`<div class="dispatcher">
    <div class="split">
      <${MapBox} onMap=${onMap} />
      <section class="queue">
        <h3>${t("queue")} <span class=${live ? "live on" : "live"}>${live ? t("live") : ""}</span></h3>
        <div class="filters">
          <select value=${status} onChange=${(e) => setStatus(e.target.value)}>
            <option value="">${t("status")}: ${t("all")}</option>
            ${OPEN.map((s) => html`<option value=${s}>${s}</option>`)}</select>
          <input placeholder=${t("category")} value=${category} onInput=${(e) => setCategory(e.target.value)} />
          <select value=${district} onChange=${(e) => setDistrict(e.target.value)}>
            <option value="">${t("district")}: ${t("all")}</option>
            ${distinct("district_id").map((d) => html`<option value=${d}>${d}</option>`)}</select>
          <select value=${department} onChange=${(e) => setDepartment(e.target.value)}>
            <option value="">${t("department")}: ${t("all")}</option>
            ${distinct("department_id").map((d) => html`<option value=${d}>${d}</option>`)}</select>
          <label class="inline">${t("since")} <input type="date" value=${since} onInput=${(e) => setSince(e.target.value)} /></label>
        </div>
        <div class="filters">${Object.keys(shownLayers).map((name) => html`<label class="inline"><input type="checkbox"
          name=${name} checked=${shownLayers[name]} onChange=${(e) => {
            const on = e.target.checked;
            setShownLayers({ ...shownLayers, [name]: on });
            if (name === "positions" && !on) setPositions(null);
            if (!map.current) return;
            if (name === "hotspots")
              hotspots(map.current, on).then((items) => setLegend(on ? items : null), (error) => say(error.message, true));
            else toggle(map.current, name, on).then((found) => found && setPositions(found))
              .catch((error) => say(error.message, true));
          }} /> ${t(name)}</label>`)}</div>
        ${legend ? html`<${Legend} title=${t("hotspots")} items=${legend} />` : null}
        ${positions ? html`<ul class="positions">${positions.map((f) => html`<li data-inspector=${f.properties.inspector_id}>
          ${f.properties.name ?? f.properties.inspector_id} · ${f.properties.cell ?? "—"} ·
          <span class="at">${f.geometry.coordinates.map((v) => v.toFixed(5)).join(", ")}</span> ·
          ${when(f.properties.ts)}</li>`)}</ul>` : null}
        <${Message} ...${message} />
        ${open ? html`<${CaseView} id=${open} onClose=${() => setOpen(null)} />` : null}
        <table><thead><tr><th>#</th><th>${t("category")}</th><th>${t("status")}</th><th>${t("deadline")}</th></tr></thead>
        <tbody>${shown.slice(0, 200).map((c) => html`<tr data-case=${c.id} class=${c.overdue ? "overdue" : ""}
          onClick=${() => setOpen(c.id)}><td>${c.id}</td><td>${c.category_code}</td><td>${c.status}</td>
          <td>${when(c.deadline)}</td></tr>`)}</tbody></table>
      </section>
    </div>
    <${Metrics} />
    <${Workload} />
  </div>`;
}
