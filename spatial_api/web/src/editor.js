// GIS staff: open a feature (by id or from the map), edit its attributes or move it, save with
// If-Match. When someone else saved first (412) the conflict view shows the original, their
// version and mine per field, and saves the merge on their version. The feature's history with
// restore, and importing a file with a progress bar and the import report.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, authHeaders } from "./api.js";
import { t, when } from "./i18n.js";
import { placeMarker } from "./map.js";
import { html, MapBox, Message, useMessage } from "./ui.js";

const FIXED = new Set(["version", "updated_at", "updated_by"]);
const same = (a, b) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

/** The value typed in a field, with the type of the value it replaces. */
function typed(text, like) {
  if (typeof like === "number" && text.trim() !== "" && !Number.isNaN(Number(text))) return Number(text);
  return text === "" && like === null ? null : text;
}

function Conflict({ base, mine, theirs, onMerge }) {
  const fields = Object.keys({ ...base, ...mine, ...theirs }).filter(
    (k) => !FIXED.has(k) && (!same(mine[k], base[k]) || !same(theirs[k], base[k])),
  );
  const [pick, setPick] = useState(
    Object.fromEntries(fields.map((k) => [k, same(mine[k], base[k]) ? "theirs" : "mine"])),
  );
  return html`<div class="conflict" role="alert">
    <p class="msg error">${t("conflict")}</p>
    <table><thead><tr><th></th><th>${t("version")} ←</th><th>${t("theirs")}</th><th>${t("mine")}</th></tr></thead>
    <tbody>${fields.map((k) => html`<tr data-field=${k}><th>${k}</th><td>${String(base[k] ?? "")}</td>
      <td><label><input type="radio" name=${`pick-${k}`} value="theirs" checked=${pick[k] === "theirs"}
        onChange=${() => setPick({ ...pick, [k]: "theirs" })} /> ${String(theirs[k] ?? "")}</label></td>
      <td><label><input type="radio" name=${`pick-${k}`} value="mine" checked=${pick[k] === "mine"}
        onChange=${() => setPick({ ...pick, [k]: "mine" })} /> ${String(mine[k] ?? "")}</label></td></tr>`)}</tbody></table>
    <button class="merge" onClick=${() => onMerge(Object.fromEntries(fields.filter((k) => pick[k] === "mine").map((k) => [k, mine[k]])))}>${t("merge")}</button>
  </div>`;
}

function Feature({ layer, id, map, onSaved }) {
  const [loaded, setLoaded] = useState(null);
  const [edits, setEdits] = useState({});
  const [moved, setMoved] = useState(null);
  const [moving, setMoving] = useState(false);
  const [conflict, setConflict] = useState(null);
  const [versions, setVersions] = useState([]);
  const [message, say] = useMessage();
  const marker = useRef(null);
  async function load() {
    const { data, etag } = await api(`/collections/${layer}/items/${encodeURIComponent(id)}`);
    setLoaded({ feature: data, etag });
    setEdits({});
    setMoved(null);
    const history = `/collections/${layer}/items/${encodeURIComponent(id)}/history`;
    setVersions(await api(history).then(({ data }) => data.versions, () => []));
    const g = data.geometry;
    if (map && g?.type === "Point") {
      map.jumpTo({ center: g.coordinates, zoom: Math.max(map.getZoom(), 16) });
      marker.current = placeMarker(map, marker.current, g.coordinates, "#0b63c5");
    }
  }
  useEffect(() => {
    load().catch((e) => say(e.message, true));
    return () => marker.current?.remove();
  }, [layer, id]);
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
  async function patch(properties, etag) {
    const body = { properties };
    if (moved) body.geometry = { type: "Point", coordinates: moved };
    return api(`/collections/${layer}/items/${encodeURIComponent(id)}`, {
      method: "PATCH", body, headers: { "If-Match": etag, "Content-Type": "application/merge-patch+json" },
    });
  }
  async function save() {
    try {
      await patch(edits, loaded.etag);
      say(t("saved"));
      await load();
      onSaved?.();
    } catch (error) {
      if (error.status !== 412) return say(error.message, true);
      const latest = await api(`/collections/${layer}/items/${encodeURIComponent(id)}`);
      setConflict({ base: loaded.feature.properties, mine: { ...loaded.feature.properties, ...edits },
        theirs: latest.data.properties, etag: latest.etag });
    }
  }
  async function merge(properties) {
    try {
      await patch(properties, conflict.etag);
      setConflict(null);
      say(t("saved"));
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
      <button type="submit" class="save">${t("save")}</button>
    </form>
    <${Message} ...${message} />
    ${conflict ? html`<${Conflict} ...${conflict} onMerge=${merge} />` : null}
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
      const hit = m.queryRenderedFeatures(e.point).find((f) => f.sourceLayer === layer && f.id !== undefined);
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
        ${id ? html`<${Feature} key=${layer + id} layer=${layer} id=${id} map=${map} />` : null}
        <${Import} layers=${layers} />
      </section>
    </div>
  </div>`;
}
