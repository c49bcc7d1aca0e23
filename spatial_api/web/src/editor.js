// GIS staff: open a feature (by id or from the map), edit its attributes, move a point or
// redraw a line or polygon (shape.js, loaded only then), save with If-Match. When someone else
// saved first (412) the conflict view shows the original, their version and mine per field and
// for the geometry (both drawn on the map), and saves the merge on their version. The feature's
// history with restore, and importing a file with a progress bar and the import report.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, authHeaders } from "./api.js";
import { t, when } from "./i18n.js";
import { boundsOf, placeMarker } from "./map.js";
import { html, MapBox, Message, useMessage } from "./ui.js";

const FIXED = new Set(["version", "updated_at", "updated_by"]);
const same = (a, b) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
/** Whether the shape editor redraws `geometry`: a LineString or a one-ring Polygon. */
const redrawable = (g) => g?.type === "LineString" || (g?.type === "Polygon" && g.coordinates.length === 1);
/** The number of vertices of a line or polygon (a ring's closing one not counted). */
const vertices = (g) => (g?.type === "Polygon" ? g.coordinates[0].length - 1 : g?.coordinates.length ?? 0);
const VERSIONS = "geometry-versions";
const COLOURS = { theirs: "#e66101", mine: "#0b63c5" };

/** Their geometry and mine drawn on the map (the chosen one wider) while the conflict is open. */
function useVersionsOnMap(map, geometry, picked) {
  useEffect(() => {
    if (!map || !geometry) return undefined;
    const features = ["theirs", "mine"].map((v) => ({ type: "Feature", properties: { version: v }, geometry: geometry[v] }));
    map.addSource(VERSIONS, { type: "geojson", data: { type: "FeatureCollection", features } });
    map.addLayer({ id: VERSIONS, type: "line", source: VERSIONS, paint: {
      "line-color": ["match", ["get", "version"], "theirs", COLOURS.theirs, COLOURS.mine],
      "line-dasharray": ["match", ["get", "version"], "theirs", ["literal", [2, 1]], ["literal", [1, 0]]],
    } });
    return () => {
      map.removeLayer(VERSIONS);
      map.removeSource(VERSIONS);
    };
  }, [map, geometry]);
  useEffect(() => {
    if (map?.getLayer(VERSIONS))
      map.setPaintProperty(VERSIONS, "line-width", ["match", ["get", "version"], picked ?? "", 5, 2]);
  }, [map, geometry, picked]);
}

/** The value typed in a field, with the type of the value it replaces. */
function typed(text, like) {
  if (typeof like === "number" && text.trim() !== "" && !Number.isNaN(Number(text))) return Number(text);
  return text === "" && like === null ? null : text;
}

/** The conflict view: per field (and for the geometry, when either side changed it) the value
 * both started from, theirs and mine; `onMerge(properties, geometry)` gets the fields and the
 * geometry kept from mine (geometry null: theirs is kept). */
function Conflict({ base, mine, theirs, geometry, map, onMerge }) {
  const fields = Object.keys({ ...base, ...mine, ...theirs }).filter(
    (k) => !FIXED.has(k) && (!same(mine[k], base[k]) || !same(theirs[k], base[k])),
  );
  const reshaped = geometry && (!same(geometry.mine, geometry.base) || !same(geometry.theirs, geometry.base));
  const [pick, setPick] = useState({
    ...Object.fromEntries(fields.map((k) => [k, same(mine[k], base[k]) ? "theirs" : "mine"])),
    ...(reshaped ? { geometry: same(geometry.mine, geometry.base) ? "theirs" : "mine" } : {}),
  });
  useVersionsOnMap(map, reshaped && geometry.base?.type !== "Point" ? geometry : null, pick.geometry);
  const shape = (g, version) => html`${version ? html`<span class="swatch" style=${`background:${COLOURS[version]}`}></span> ` : null}${g.type === "Point"
    ? g.coordinates.map((v) => v.toFixed(6)).join(", ") : `${vertices(g)} ${t("vertices")}`}`;
  return html`<div class="conflict" role="alert">
    <p class="msg error">${t("conflict")}</p>
    <table><thead><tr><th></th><th>${t("version")} ←</th><th>${t("theirs")}</th><th>${t("mine")}</th></tr></thead>
    <tbody>${fields.map((k) => html`<tr data-field=${k}><th>${k}</th><td>${String(base[k] ?? "")}</td>
      <td><label><input type="radio" name=${`pick-${k}`} value="theirs" checked=${pick[k] === "theirs"}
        onChange=${() => setPick({ ...pick, [k]: "theirs" })} /> ${String(theirs[k] ?? "")}</label></td>
      <td><label><input type="radio" name=${`pick-${k}`} value="mine" checked=${pick[k] === "mine"}
        onChange=${() => setPick({ ...pick, [k]: "mine" })} /> ${String(mine[k] ?? "")}</label></td></tr>`)}
      ${reshaped ? html`<tr data-field="geometry"><th>${t("geometry")}</th><td>${shape(geometry.base)}</td>
      <td><label><input type="radio" name="pick-geometry" value="theirs" checked=${pick.geometry === "theirs"}
        onChange=${() => setPick({ ...pick, geometry: "theirs" })} /> ${shape(geometry.theirs, "theirs")}</label></td>
      <td><label><input type="radio" name="pick-geometry" value="mine" checked=${pick.geometry === "mine"}
        onChange=${() => setPick({ ...pick, geometry: "mine" })} /> ${shape(geometry.mine, "mine")}</label></td></tr>` : null}</tbody></table>
    <button class="merge" onClick=${() => onMerge(
      Object.fromEntries(fields.filter((k) => pick[k] === "mine").map((k) => [k, mine[k]])),
      reshaped && pick.geometry === "mine" ? geometry.mine : null,
    )}>${t("merge")}</button>
  </div>`;
}

function Feature({ layer, id, map, onSaved, onShaping }) {
  const [loaded, setLoaded] = useState(null);
  const [edits, setEdits] = useState({});
  const [moved, setMoved] = useState(null);
  const [moving, setMoving] = useState(false);
  const [reshaped, setReshaped] = useState(null); // the line or polygon as redrawn
  const [shaping, setShaping] = useState(false);
  const stopShape = useRef(null);
  const [conflict, setConflict] = useState(null);
  const [versions, setVersions] = useState([]);
  const [message, say] = useMessage();
  const marker = useRef(null);
  async function load() {
    const { data, etag } = await api(`/collections/${layer}/items/${encodeURIComponent(id)}`);
    setLoaded({ feature: data, etag });
    setEdits({});
    setMoved(null);
    endShape();
    setReshaped(null);
    const history = `/collections/${layer}/items/${encodeURIComponent(id)}/history`;
    setVersions(await api(history).then(({ data }) => data.versions, () => []));
    const g = data.geometry;
    if (map && g?.type === "Point") {
      map.jumpTo({ center: g.coordinates, zoom: Math.max(map.getZoom(), 16) });
      marker.current = placeMarker(map, marker.current, g.coordinates, "#0b63c5");
    }
  }
  useEffect(() => { // a line or polygon fills the map (once both are there)
    const g = loaded?.feature.geometry;
    if (map && g && g.type !== "Point")
      map.fitBounds(boundsOf({ features: [loaded.feature] }), { padding: 80, maxZoom: 18, animate: false });
  }, [map, loaded]);
  useEffect(() => {
    load().catch((e) => say(e.message, true));
    return () => {
      marker.current?.remove();
      endShape();
    };
  }, [layer, id]);
  /** Take the shape editor off the map (what was redrawn stays in `reshaped`). */
  function endShape() {
    stopShape.current?.();
    stopShape.current = null;
    setShaping(false);
    onShaping?.(false);
  }
  async function redraw() {
    try {
      const { editShape } = await import("./shape.js");
      endShape();
      stopShape.current = editShape(map, reshaped ?? loaded.feature.geometry, setReshaped);
      setShaping(true);
      onShaping?.(true);
    } catch (error) {
      say(error.message, true);
    }
  }
  function cancelShape() {
    endShape();
    setReshaped(null);
  }
  useEffect(() => {
    if (!map || !moving) return undefined;
    const click = (e) => {
      const at = [e.lngLat.lng, e.lngLat.lat];
      setMoved(at);
      marker.current = placeMarker(map, marker.current, at, "#0b63c5");
      setMoving(false);
    };
    map.once("click", click);
    return () => map.off("click", click);
  }, [moving]);
  /** The geometry as I changed it (a moved point or a redrawn shape); null when unchanged. */
  const myGeometry = () => (moved ? { type: "Point", coordinates: moved } : reshaped);
  async function patch(properties, etag, geometry) {
    const body = { properties };
    if (geometry) body.geometry = geometry;
    return api(`/collections/${layer}/items/${encodeURIComponent(id)}`, {
      method: "PATCH", body, headers: { "If-Match": etag, "Content-Type": "application/merge-patch+json" },
    });
  }
  async function save() {
    try {
      await patch(edits, loaded.etag, myGeometry());
      say(t("saved"));
      await load();
      onSaved?.();
    } catch (error) {
      if (error.status !== 412) return say(error.message, true);
      const latest = await api(`/collections/${layer}/items/${encodeURIComponent(id)}`);
      endShape();
      const base = loaded.feature.geometry;
      setConflict({ base: loaded.feature.properties, mine: { ...loaded.feature.properties, ...edits },
        theirs: latest.data.properties, etag: latest.etag,
        geometry: { base, mine: myGeometry() ?? base, theirs: latest.data.geometry } });
    }
  }
  async function merge(properties, geometry) {
    try {
      if (Object.keys(properties).length === 0 && !geometry) say(t("keptTheirs")); // nothing of mine to save
      else {
        await patch(properties, conflict.etag, geometry);
        say(t("saved"));
      }
      setConflict(null);
      await load();
    } catch (error) {
      say(error.message, true);
    }
  }
  async function restore(version) {
    try {
      await api(`/collections/${layer}/items/${encodeURIComponent(id)}/history/${version}/restore`, {
        method: "POST", headers: { "If-Match": loaded.etag } });
      say(t("saved"));
      await load();
    } catch (error) {
      say(error.message, true);
    }
  }
  if (!loaded) return html`<${Message} ...${message} />`;
  const props = loaded.feature.properties;
  return html`<section class="feature" data-feature=${id}>
    <h3>${layer} ${id}</h3>
    <form class="attrs" onSubmit=${(e) => { e.preventDefault(); save(); }}>
      ${Object.keys(props).filter((k) => !FIXED.has(k)).map((k) => html`<label>${k}<input name=${k}
        value=${k in edits ? edits[k] ?? "" : props[k] ?? ""}
        onInput=${(e) => setEdits({ ...edits, [k]: typed(e.target.value, props[k]) })} /></label>`)}
      ${loaded.feature.geometry?.type === "Point" ? html`<button type="button" onClick=${() => setMoving(true)}>
        ${t("move")}</button> ${moving ? html`<small>${t("moveHint")}</small>` : null}` : null}
      ${redrawable(loaded.feature.geometry) && map ? html`<span class="shape">${shaping
        ? html`<button type="button" class="cancel-shape" onClick=${cancelShape}>${t("cancel")}</button>
          <small>${t("redrawHint")}</small>`
        : html`<button type="button" class="redraw" onClick=${redraw}>${t("redraw")}</button>`}
        ${reshaped ? html`<small class="vertex-count">${vertices(reshaped)} ${t("vertices")}</small>` : null}</span>` : null}
      <button type="submit" class="save">${t("save")}</button>
    </form>
    <${Message} ...${message} />
    ${conflict ? html`<${Conflict} ...${conflict} map=${map} onMerge=${merge} />` : null}
    <h4>${t("history")}</h4>
    <ol class="history">${versions.map((v) => html`<li>${t("version")} ${v.version} · ${v.op} · ${v.actor} · ${when(v.at)}
      ${v.after && v.version !== props.version ? html` <button class="link" onClick=${() => restore(v.version)}>${t("restore")}</button>` : null}</li>`)}</ol>
  </section>`;
}

function Import({ layers }) {
  const [layer, setLayer] = useState(layers[0] ?? "");
  const [progress, setProgress] = useState(0);
  const [report, setReport] = useState(null);
  const [message, say] = useMessage();
  const file = useRef(null);
  function upload(event) {
    event.preventDefault();
    const form = new FormData();
    for (const f of file.current.files) form.append("file", f);
    const request = new XMLHttpRequest(); // fetch reports no upload progress
    request.open("POST", `/collections/${layer}/import`);
    for (const [k, v] of Object.entries(authHeaders())) request.setRequestHeader(k, v);
    request.upload.onprogress = (e) => e.lengthComputable && setProgress(e.loaded / e.total);
    request.onload = () => {
      const body = JSON.parse(request.responseText || "null");
      if (request.status >= 400) say(body?.message ?? request.statusText, true);
      else setReport(body);
    };
    request.onerror = () => say(t("offline"), true);
    setProgress(0);
    setReport(null);
    request.send(form);
  }
  return html`<form class="import" onSubmit=${upload}>
    <h3>${t("import")}</h3>
    <label>${t("importLayer")}<select value=${layer} onChange=${(e) => setLayer(e.target.value)}>
      ${layers.map((l) => html`<option value=${l}>${l}</option>`)}</select></label>
    <input type="file" ref=${file} multiple />
    <button type="submit">${t("upload")}</button>
    <progress max="1" value=${progress}></progress>
    <${Message} ...${message} />
    ${report ? html`<details open><summary>${t("importReport")}</summary><pre>${JSON.stringify(report, null, 1)}</pre></details>` : null}
  </form>`;
}

/** The GIS staff's screen. */
export function Editor({ me }) {
  const [layers, setLayers] = useState([]);
  const [layer, setLayer] = useState("assets");
  const [typedId, setTypedId] = useState("");
  const [id, setId] = useState(null);
  const [map, setMap] = useState(null);
  const current = useRef({ layer, shaping: false }); // read by the map's click handler
  current.current.layer = layer;
  useEffect(() => {
    api("/collections").then(({ data }) => {
      const ids = data.collections.map((c) => c.id);
      const allowed = me.scope.layers ? ids.filter((l) => me.scope.layers.includes(l)) : ids;
      setLayers(allowed);
    });
  }, []);
  function onMap(m) {
    setMap(m);
    m.on("click", (e) => {
      if (current.current.shaping) return; // clicks belong to the shape editor then
      const hit = m.queryRenderedFeatures(e.point).find((f) => f.sourceLayer === current.current.layer && f.id !== undefined);
      if (hit) setId(String(hit.id));
    });
  }
  return html`<div class="editor">
    <div class="split">
      <${MapBox} onMap=${onMap} />
      <section class="side">
        <form class="open" onSubmit=${(e) => { e.preventDefault(); setId(typedId.trim()); }}>
          <select value=${layer} onChange=${(e) => setLayer(e.target.value)}>
            ${layers.map((l) => html`<option value=${l}>${l}</option>`)}</select>
          <input name="feature-id" placeholder=${t("openById")} value=${typedId}
            onInput=${(e) => setTypedId(e.target.value)} />
          <button type="submit">${t("open")}</button>
        </form>
        ${id ? html`<${Feature} key=${layer + id} layer=${layer} id=${id} map=${map}
          onShaping=${(on) => { current.current.shaping = on; }} />` : null}
        <${Import} layers=${layers} />
      </section>
    </div>
  </div>`;
}
