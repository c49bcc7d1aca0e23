// The dispatcher's desk: a live map of open cases (new cases and transitions arrive by SSE
// within a second or two; overdue ones ringed red), the filtered case queue with the
// dispatcher's actions (each with If-Match), and the metrics panel.
import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "./api.js";
import { t, when } from "./i18n.js";
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

function Metrics() {
  const [rows, setRows] = useState([]);
  useEffect(() => {
    api("/incidents/metrics?group_by=department").then(({ data }) => setRows([...data.groups, { ...data.total, label: t("all") }]));
  }, []);
  const pct = (v) => (v === null || v === undefined ? "—" : `${(v * 100).toFixed(1)}%`);
  return html`<section class="metrics"><h3>${t("metrics")}</h3><table>
    <thead><tr><th>${t("department")}</th><th>${t("closeRate")}</th><th>${t("onTimeRate")}</th><th>${t("reworkRate")}</th></tr></thead>
    <tbody>${rows.map((r) => html`<tr><td>${r.label ?? r.key}</td><td>${pct(r.closing_rate)}</td>
      <td>${pct(r.on_time_closing_rate)}</td><td>${pct(r.rework_rate)}</td></tr>`)}</tbody></table></section>`;
}

/** The dispatcher's screen. */
export function Dispatcher() {
  const [cases, setCases] = useState(new Map());
  const [status, setStatus] = useState("");
  const [category, setCategory] = useState("");
  const [open, setOpen] = useState(null);
  const [live, setLive] = useState(false);
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
  const shown = [...cases.values()]
    .filter((c) => OPEN.includes(c.status))
    .filter((c) => !status || c.status === status)
    .filter((c) => !category || c.category_code.startsWith(category))
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
        </div>
        <${Message} ...${message} />
        ${open ? html`<${CaseView} id=${open} onClose=${() => setOpen(null)} />` : null}
        <table><thead><tr><th>#</th><th>${t("category")}</th><th>${t("status")}</th><th>${t("deadline")}</th></tr></thead>
        <tbody>${shown.slice(0, 200).map((c) => html`<tr data-case=${c.id} class=${c.overdue ? "overdue" : ""}
          onClick=${() => setOpen(c.id)}><td>${c.id}</td><td>${c.category_code}</td><td>${c.status}</td>
          <td>${when(c.deadline)}</td></tr>`)}</tbody></table>
      </section>
    </div>
    <${Metrics} />
  </div>`;
}
