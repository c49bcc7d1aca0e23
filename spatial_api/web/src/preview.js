// The layer preview, for anyone: every catalog layer the caller may read, on a map with the
// layer's own style, and the attribute table of the features in view.
import { useEffect, useState } from "preact/hooks";
import { api } from "./api.js";
import { t } from "./i18n.js";
import { html, MapBox, Message, useMessage } from "./ui.js";

const ROWS = 20;

function LayerMap({ layer, styles }) {
  const [rows, setRows] = useState([]);
  const [message, say] = useMessage();
  const style = styles.includes(layer) ? layer : "city";
  const keep = (l) => style !== "city" || l["source-layer"] === layer;
  function onMap(map) {
    const load = async () => {
      const b = map.getBounds();
      const bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(6));
      try {
        const { data } = await api(`/collections/${layer}/items?limit=${ROWS}&bbox=${bbox}`);
        setRows(data.features);
        say("");
      } catch (error) {
        say(error.message, true);
      }
    };
    map.on("moveend", load);
    load();
  }
  const columns = [...new Set(rows.flatMap((f) => Object.keys(f.properties ?? {})))].slice(0, 8);
  return html`<div class="split">
    <${MapBox} key=${layer} style=${style} keep=${keep} onMap=${onMap} />
    <section class="table">
      <h3>${t("attributes")}</h3>
      <${Message} ...${message} />
      ${rows.length === 0 ? html`<p>${t("noRows")}</p>` : html`<table>
        <thead><tr><th>id</th>${columns.map((c) => html`<th>${c}</th>`)}</tr></thead>
        <tbody>${rows.map((f) => html`<tr><td>${f.id}</td>${columns.map((c) =>
          html`<td>${format(f.properties?.[c])}</td>`)}</tr>`)}</tbody>
      </table>`}
    </section>
  </div>`;
}

function format(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

/** The preview: a layer list and the chosen layer's map and table. */
export function Preview() {
  const [layers, setLayers] = useState([]);
  const [styles, setStyles] = useState([]);
  const [chosen, choose] = useState(null);
  useEffect(() => {
    api("/collections").then(({ data }) => {
      setLayers(data.collections);
      choose(data.collections[0]?.id ?? null);
    });
    api("/styles").then(({ data }) => setStyles(data.styles.map((s) => s.name)));
  }, []);
  return html`<div class="preview">
    <aside class="layers">
      <h3>${t("layers")}</h3>
      <ul>${layers.map((l) => html`<li><button class=${l.id === chosen ? "on" : "link"}
        data-layer=${l.id} onClick=${() => choose(l.id)}>${l.title}</button></li>`)}</ul>
    </aside>
    ${chosen && styles.length ? html`<${LayerMap} key=${chosen} layer=${chosen} styles=${styles} />` : null}
  </div>`;
}
