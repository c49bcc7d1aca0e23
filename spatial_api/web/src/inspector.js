// The inspector's phone screen: the map on my position or my cells (outlined), a banner saying
// whose cell I stand in, my task list, reporting a case, and the outbox of what waits for the
// network. Reports and actions go through the outbox, so they work offline.
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, api } from "./api.js";
import { language, t, when } from "./i18n.js";
import { boundsOf, firstView, firstViewBounds, placeMarker, maplibre } from "./map.js";
import { FirstView } from "./firstview.js";
import { discard, enqueue, flush, mine, watchOutbox } from "./outbox.js";
import { CaseView } from "./cases.js";
import { deleteArea, downloadArea, storedArea } from "./offline.js";
import { Shift } from "./patrol.js";
import { html, MapBox, Message, useMessage } from "./ui.js";

const MY_CELLS = "my-cells";
/** The radius within which an open case of the same category may be the same (as the API's
 * default CITYHEX_DUPLICATE_RADIUS_M). */
const DUPLICATE_M = 50;

/** My cells as GeoJSON (asked for while the map loads). */
function fetchMyCells(me) {
  const filter = encodeURIComponent(`inspector_id=${me.inspector_id}`);
  return api(`/collections/grid/items?filter=${filter}&limit=10000&properties=inspector_id`).then(
    ({ data }) => data,
  );
}

/** Outline my cells on the map (which opened on their bounds). */
function showMyCells(map, data) {
  map.addSource(MY_CELLS, { type: "geojson", data });
  map.addLayer({ id: `${MY_CELLS}-fill`, type: "fill", source: MY_CELLS,
    paint: { "fill-color": "#0b63c5", "fill-opacity": 0.12 } });
  map.addLayer({ id: `${MY_CELLS}-line`, type: "line", source: MY_CELLS,
    paint: { "line-color": "#0b63c5", "line-width": 2 } });
  return data;
}

function Banner({ at, me }) {
  const [text, setText] = useState("");
  useEffect(() => {
    if (!at) return;
    api(`/grid/lookup?lon=${at[0]}&lat=${at[1]}`).then(
      ({ data }) => {
        const mine = data.inspector !== null && data.inspector.id === me.inspector_id;
        const who = data.inspector?.name ?? data.inspector?.id ?? "—";
        setText(`${t("inCell")} ${data.cell}，${mine ? t("yours") : `${t("whose")}: ${who}`}`);
      },
      (e) => setText(e.status === 404 ? t("outside") : e.message),
    );
  }, [at && at.join()]);
  return text ? html`<div class="banner" role="status">${text}</div>` : null;
}

function Tasks({ position, onOpen }) {
  const [sort, setSort] = useState("deadline");
  const [items, setItems] = useState(null);
  const [message, say] = useMessage();
  useEffect(() => {
    const near = sort === "distance" && position ? `&near=${position.join(",")}` : "";
    const by = near ? "distance" : "deadline";
    api(`/incidents?assignee=me&sort=${by}${near}&limit=100`).then(
      ({ data }) => setItems(data.items),
      (e) => say(e.message, true),
    );
  }, [sort]);
  if (!items) return html`<${Message} ...${message} />`;
  const verify = items.filter((c) => c.status === "resolved" || c.status === "reported");
  const other = items.filter((c) => !verify.includes(c));
  const row = (c) => html`<li><button class="task" data-case=${c.id} onClick=${() => onOpen(c.id)}>
    <b>${c.id}</b> ${c.category_code} · ${c.status}
    ${c.overdue ? html` <span class="overdue">${t("overdue")}</span>` : null}
    ${c.distance_m !== undefined ? ` · ${Math.round(c.distance_m)} m` : ""}
    <small>${when(c.deadline)}</small></button></li>`;
  return html`<div class="tasks">
    <div class="seg"><button class=${sort === "deadline" ? "on" : ""}
      onClick=${() => setSort("deadline")}>${t("sortDeadline")}</button><button
      class=${sort === "distance" ? "on" : ""} onClick=${() => setSort("distance")}>${t("sortNear")}</button></div>
    <h4>${t("toVerify")}</h4><ul>${verify.map(row)}</ul>
    <h4>${t("tasks")}</h4><ul>${other.map(row)}</ul>
    ${items.length === 0 ? html`<p>${t("noTasks")}</p>` : null}
  </div>`;
}

/** The incident categories: from the API when online, else as last read (kept offline). */
async function loadCategories() {
  const kept = JSON.parse(localStorage.getItem("cityhex.categories") || "[]");
  if (!navigator.onLine && kept.length) return kept;
  const { data } = await api("/incidents/categories");
  localStorage.setItem("cityhex.categories", JSON.stringify(data.categories));
  return data.categories;
}

function Report({ categories, place, setPlace, onOpen }) {
  const [major, setMajor] = useState("");
  const [category, setCategory] = useState("");
  const [description, setDescription] = useState("");
  const [routed, setRouted] = useState(null);
  const [nearby, setNearby] = useState([]);
  const [message, say] = useMessage();
  const photos = useRef(null);
  const zh = language() === "zh";
  useEffect(() => {
    // open cases of this category close by, to attach the report to one instead of a new case
    if (!category || !place || !navigator.onLine) return setNearby([]);
    const open = "reported,registered,dispatched,in_progress,resolved";
    api(`/incidents?near=${place.join(",")}&sort=distance&category=${category}&status=${open}&limit=5`)
      .then(({ data }) => setNearby(data.items.filter((c) => c.distance_m <= DUPLICATE_M)), () => setNearby([]));
  }, [category, place && place.join(), routed]);
  const majors = [...new Map(categories.map((c) => [c.major, c.major_name])).entries()];
  const department = (id) => categories.find((c) => c.department_id === id);
  function gps() {
    navigator.geolocation?.getCurrentPosition(
      (p) => setPlace([p.coords.longitude, p.coords.latitude]),
      (e) => say(e.message, true),
    );
  }
  /** Send the report through the outbox with the chosen photos (stage `report`, kept with it
   * while offline and uploaded once the case exists; the server strips their metadata, EXIF
   * GPS included). An attachment to a case nearby carries no photos. */
  async function submit(event, duplicateOf) {
    event?.preventDefault();
    const body = { category, lon: place[0], lat: place[1] };
    if (description) body.description = description;
    if (duplicateOf) body.duplicate_of = duplicateOf;
    const files = duplicateOf ? [] : [...(photos.current?.files ?? [])];
    try {
      const answer = await enqueue("/incidents", body, { label: `${t("report")} ${category}`, photos: files });
      if (photos.current && files.length) photos.current.value = "";
      if (answer === null) {
        say(files.length ? `${t("queued")} · ${t("photos")} ${files.length}` : t("queued"));
        setRouted(null);
        return;
      }
      // a photo the API refused is said (the case and the other photos went through)
      const refused = answer.refused ?? [];
      const said = refused.map((p) => `${t("photoRefused")} ${p.n} (${p.name}): ${p.reason}`);
      say([duplicateOf ? `${t("attached")} ${answer.data.id}` : "", ...said].filter(Boolean).join("；"), refused.length > 0);
      setRouted({ ...answer.data, photos: answer.photos ? answer.photos - refused.length : null, refused });
    } catch (error) {
      say(error instanceof ApiError ? error.message : String(error), true);
    }
  }
  const ready = category && place;
  return html`<form class="report" onSubmit=${submit}>
    <label>${t("category")}<select name="major" value=${major}
      onChange=${(e) => { setMajor(e.target.value); setCategory(""); }}>
      <option value="">—</option>
      ${majors.map(([code, name]) => html`<option value=${code}>${code} ${name}</option>`)}
    </select><select name="category" value=${category} onChange=${(e) => setCategory(e.target.value)}>
      <option value="">—</option>
      ${categories.filter((c) => c.major === major).map((c) =>
        html`<option value=${c.code}>${c.code} ${zh ? c.name : c.name_en || c.name}</option>`)}
    </select></label>
    <label>${t("location")} <span class="coords">${place ? place.map((v) => v.toFixed(5)).join(", ") : "—"}</span>
      <button type="button" onClick=${gps}>${t("useGps")}</button> <small>${t("tapMap")}</small></label>
    <label>${t("description")}<textarea name="description" value=${description}
      onInput=${(e) => setDescription(e.target.value)}></textarea></label>
    <label>${t("photos")}<input type="file" accept="image/*" multiple ref=${photos} /></label>
    <button type="submit" disabled=${!ready}>${t("submit")}</button>
    <${Message} ...${message} />
    ${routed ? html`<div class="routed" data-routed=${routed.id}>
      <h4>${t("routed")}</h4>
      <dl><dt>${t("case")}</dt><dd><a href="#/inspector" onClick=${() => onOpen(routed.id)}>${routed.id}</a></dd>
      <dt>${t("cell")}</dt><dd class="cell">${routed.cell}</dd>
      <dt>${t("inspectorName")}</dt><dd class="inspector">${routed.inspector_id ?? "—"}</dd>
      <dt>${t("department")}</dt><dd class="department">${(() => {
        const d = department(routed.department_id);
        return d ? (zh ? d.department_name : d.department_name_en || d.department_name) : routed.department_id;
      })()}</dd>
      <dt>${t("deadline")}</dt><dd>${when(routed.deadline)}</dd>
      ${routed.photos !== null ? html`<dt>${t("photos")}</dt><dd class="photos">${t("photosSent")}: ${routed.photos}</dd>` : null}
      ${routed.refused?.map((p) => html`<dt>${t("photoRefused")} ${p.n}</dt><dd class="refused">${p.name}: ${p.reason}</dd>`)}</dl>
    </div>` : null}
    ${nearby.length ? html`<div class="nearby"><h4>${t("duplicates")}</h4><ul>
      ${nearby.map((d) => html`<li data-nearby=${d.id}>${d.id} · ${d.status} · ${Math.round(d.distance_m)} m
        <button type="button" onClick=${() => submit(null, d.id)}>${t("attach")}</button></li>`)}</ul></div>` : null}
  </form>`;
}

function Outbox() {
  const [items, setItems] = useState([]);
  useEffect(() => watchOutbox(setItems), []);
  return html`<div class="outbox">
    <button onClick=${() => flush()}>${t("sendNow")}</button>
    ${items.length === 0 ? html`<p>${t("empty")}</p>` : html`<ul>${items.map((i) => html`<li
      class=${i.error ? "failed" : i.done ? "done" : mine(i) ? "waiting" : "needs-owner"}>${i.label} · ${new Date(i.queued).toLocaleTimeString()}
      ${i.photos?.length ? html` · <span class="queued-photos">${t("photos")} ${i.photos.filter((p) => p.sent).length}/${i.photos.length}</span>` : null}
      ${i.photos?.filter((p) => p.refused).map((p) => html` · <span class="refused-photo">${t("photoRefused")} ${p.name}: ${p.refused}</span>`)}
      ${!i.error && !i.done && !mine(i) ? html` · <span class="needs-owner">${t("needsOwner")}</span>` : null}
      ${i.error ? html` · ${t("failed")}: ${i.error}` : null}
      ${i.error || i.done ? html` <button class="link" onClick=${() => discard(i.key)}>×</button>` : null}</li>`)}</ul>`}
  </div>`;
}

/** A size in bytes as megabytes ("1.2 MB"). */
function mb(bytes) {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

/** The inspector's screen. */
export function Inspector({ me }) {
  const [tab, setTab] = useState("tasks");
  const [open, setOpen] = useState(null);
  const [here, setHere] = useState(null);
  const [place, setPlace] = useState(null);
  const [waiting, setWaiting] = useState(0);
  const [categories, setCategories] = useState([]);
  const [area, setArea] = useState(null); // what is stored: {size, date, …}
  const [progress, setProgress] = useState(null); // bytes received, of total
  const [areaError, setAreaError] = useState("");
  const [online, setOnline] = useState(navigator.onLine);
  const map = useRef(null);
  const [shown, setShown] = useState(null); // the map, once my cells are on it
  const myCells = useRef(null);
  // with a first view (the server's picture of my cells), after it and MapLibre's script,
  // whose bytes come first
  if (me.inspector_id && !myCells.current) {
    myCells.current = firstView().then((svg) => svg && maplibre()).then(() => fetchMyCells(me));
    myCells.current.catch(() => {}); // a map that failed says so in its box (ui.js)
  }
  const view = useRef(null); // the map opens on the first view's bounds, or on my cells
  view.current ??= firstView().then((svg) => {
    const shown = firstViewBounds(svg);
    if (shown) return { bounds: shown };
    return (myCells.current ?? Promise.resolve(null)).then((data) => {
      const bounds = data && boundsOf(data);
      return bounds ? { bounds, fitBoundsOptions: { padding: 20 } } : {};
    });
  });
  useEffect(() => { // the banner starts with the first view, on its centre
    firstView().then((svg) => {
      const b = firstViewBounds(svg);
      if (b) setHere((at) => at ?? [(b[0][0] + b[1][0]) / 2, (b[0][1] + b[1][1]) / 2]);
    });
  }, []);
  const marker = useRef(null);
  useEffect(() => watchOutbox((items) => setWaiting(items.filter((i) => !i.done).length)), []);
  useEffect(() => {
    loadCategories().then(setCategories, () => {});
  }, []);
  useEffect(() => {
    const on = () => setOnline(navigator.onLine);
    window.addEventListener("online", on);
    window.addEventListener("offline", on);
    return () => { window.removeEventListener("online", on); window.removeEventListener("offline", on); };
  }, []);
  useEffect(() => {
    if (map.current && place) marker.current = placeMarker(map.current, marker.current, place);
  }, [place]);
  useEffect(() => {
    storedArea().then(setArea, () => {});
  }, []);
  async function download() {
    setAreaError("");
    setProgress([0, 0]);
    try {
      setArea(await downloadArea(map.current, (received, total) => setProgress([received, total])));
    } catch (error) {
      setAreaError(error.message);
    } finally {
      setProgress(null);
    }
  }
  async function forget() {
    await deleteArea();
    setArea(null);
  }
  async function onMap(m) {
    map.current = m;
    m.on("click", (e) => setPlace([e.lngLat.lng, e.lngLat.lat]));
    if (me.inspector_id) showMyCells(m, await myCells.current);
    navigator.geolocation?.getCurrentPosition(
      (p) => {
        const at = [p.coords.longitude, p.coords.latitude];
        setHere(at);
        m.jumpTo({ center: at, zoom: Math.max(m.getZoom(), 15) });
      },
      () => setHere((at) => at ?? m.getCenter().toArray()),
      { timeout: 5000 },
    );
    setShown(m);
    window.cityhexReady = performance.now(); // for tests and the benchmark: my cells shown
  }
  return html`<div class="inspector">
    <${FirstView} map=${shown} />
    <${MapBox} className="map phone" view=${view.current} onMap=${onMap} />
    <${Banner} at=${here} me=${me} />
    <div class="net ${online ? "on" : "off"}">${online ? t("online") : t("offline")}</div>
    <nav class="tabs">
      <button class=${tab === "tasks" ? "on" : ""} data-tab="tasks" onClick=${() => setTab("tasks")}>${t("tasks")}</button>
      <button class=${tab === "report" ? "on" : ""} data-tab="report" onClick=${() => setTab("report")}>${t("report")}</button>
      <button class=${tab === "outbox" ? "on" : ""} data-tab="outbox" onClick=${() => setTab("outbox")}>${t("outbox")}
        ${waiting ? html` <span class="count">${waiting}</span>` : null}</button>
    </nav>
    ${open ? html`<${CaseView} id=${open} viaOutbox=${true} onClose=${() => setOpen(null)} />` : null}
    <div hidden=${tab !== "tasks"}><${Tasks} position=${here} onOpen=${setOpen} /></div>
    <div hidden=${tab !== "report"}><${Report} categories=${categories} place=${place}
      setPlace=${setPlace} onOpen=${setOpen} /></div>
    <div hidden=${tab !== "outbox"}><${Outbox} /></div>
    ${me.inspector_id ? html`<${Shift} me=${me} map=${shown} />` : null}
    <div class="download"><button class="link" onClick=${download} disabled=${!shown || progress}>${t("download")}</button>
      ${progress ? html` <progress value=${progress[0]} max=${progress[1] || undefined}></progress>
        <small>${mb(progress[0])}${progress[1] ? ` / ${mb(progress[1])}` : ""}</small>` : null}
      ${area ? html`<p class="stored" data-size=${area.size}>${t("downloaded")} · ${mb(area.size)} ·
        ${when(new Date(area.date).toISOString())} <button class="link delete" onClick=${forget}>${t("delete")}</button></p>` : null}
      ${areaError ? html`<p class="msg error">${areaError}</p>` : null}</div>
  </div>`;
}
