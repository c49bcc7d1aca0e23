// MapLibre maps on CityHex's own style (loaded after the inspector's first view, an SVG the
// server draws: firstview.js), tiles and glyphs: the token goes (as a header) with
// every request to this origin; Chinese labels are drawn with the device's own fonts (no font download); tiles
// come from the network, or offline from the area the inspector downloaded (offline.js).
import { authHeaders, freshHeaders } from "./api.js";
import { addTileProtocol, offlineCapable } from "./offline.js";

let maplibregl = null;
let loading = null;

/** The first view the page's bootstrap asked for (/grid/overview.svg, boot.js): the SVG's
 * text, or null (no inspector, no cells, no network). */
export function firstView() {
  return window.cityhexBoot?.overview ?? Promise.resolve(null);
}

/** The bounds [[w, s], [e, n]] the first view shows (its `data-bounds`). */
export function firstViewBounds(svg) {
  const found = /data-bounds="([^"]+)"/.exec(svg ?? "");
  if (!found) return null;
  const [w, s, e, n] = found[1].split(",").map(Number);
  return [[w, s], [e, n]];
}

/** MapLibre's script (named by the page's `cityhex-maplibre`), added now; resolves once it ran. */
function addMapLibreScript() {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = document.querySelector("meta[name=cityhex-maplibre]").content;
    script.onload = resolve;
    script.onerror = () => { script.remove(); reject(new Error("MapLibre did not load")); };
    document.head.append(script);
  });
}

/** MapLibre GL JS with the tile protocol added. Its script is added by the page's bootstrap
 * as soon as the first view has arrived (boot.js), or here, only after the first view, so its
 * 280 KB never share the network with the first view. */
export function maplibre() {
  loading ??= (window.cityhexBoot?.maplibre ?? firstView().then(addMapLibreScript)).then(() => {
    maplibregl = window.maplibregl;
    addTileProtocol(maplibregl);
    return maplibregl;
  });
  // a script that failed to load rejects (its onerror), and the next map tries again
  loading.catch(() => {
    loading = null;
    if (window.cityhexBoot) window.cityhexBoot.maplibre = null;
  });
  return loading;
}

export const CENTRE = [114.05, 22.55];

const styles = new Map();

/** Ask now for the first glyph range (0-255: digits and Latin) of every font the style's labels
 * use, so it is in the HTTP cache (glyphs are public, cached a long time) when MapLibre
 * needs it after parsing the tiles, instead of one more round trip then (once MapLibre's script
 * is in: its bytes come first). CJK labels are drawn with the device's fonts. Resolves to the
 * style itself. */
function prefetchGlyphs(doc) {
  if (doc.glyphs) {
    const stacks = new Set(doc.layers.map((l) => l.layout?.["text-font"])
      .filter((f) => Array.isArray(f) && f.every((x) => typeof x === "string")).map((f) => f.join(",")));
    for (const stack of stacks) {
      const url = doc.glyphs.replace("{fontstack}", encodeURIComponent(stack)).replace("{range}", "0-255");
      fetch(url, { headers: authHeaders() }).catch(() => {});
    }
  }
  return doc;
}

/** The style `name` with its vector sources made offline-capable, fetched once (a failure
 * is not kept). Asked for early by main.js, while the caller's role is still being read. */
export function loadStyle(name) {
  if (!styles.has(name)) {
    const doc = freshHeaders()
      .then((headers) => fetch(`/styles/${name}.json`, { headers }))
      .then((r) => r.json())
      .then((d) => {
        maplibre().then(() => prefetchGlyphs(d), () => {});
        return d;
      })
      .then((d) => offlineCapable(d));
    styles.set(name, doc.catch((error) => { styles.delete(name); throw error; }));
  }
  return styles.get(name);
}

/** The style `name` with only the layers `keep(layer)` chooses, and the sources they use. */
async function styleWith(name, keep) {
  const headers = await freshHeaders();
  const doc = await (await fetch(`/styles/${name}.json`, { headers })).json();
  doc.layers = doc.layers.filter((layer) => layer.type === "background" || keep(layer));
  const used = new Set(doc.layers.map((layer) => layer.source).filter(Boolean));
  doc.sources = Object.fromEntries(Object.entries(doc.sources).filter(([id]) => used.has(id)));
  return offlineCapable(doc);
}

/**
 * A map in `container` on `/styles/{style}.json`. `keep(layer)` chooses the style's layers
 * (a caller without a key cannot read the case layers); `view` is (a promise of) further Map
 * options, such as the bounds to open on. Resolves once the style is loaded.
 */
export async function makeMap(container, { style = "city", keep, view = {} } = {}) {
  const [found, options] = await Promise.all([
    keep ? styleWith(style, keep) : loadStyle(style),
    view,
    maplibre(),
  ]);
  const doc = structuredClone(found);
  const map = new maplibregl.Map({
    container,
    style: doc,
    center: CENTRE,
    zoom: 13,
    attributionControl: false,
    localIdeographFontFamily: "'Noto Sans CJK SC', 'PingFang SC', 'Microsoft YaHei', sans-serif",
    transformRequest: (url) =>
      new URL(url, location.href).origin === location.origin
        ? { url, headers: authHeaders() }
        : { url },
    ...options,
  });
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
  window.cityhexMap = map; // for the browser tests: the map on screen
  await new Promise((resolve) => map.once("load", resolve));
  return map;
}

/** The bounds [[w, s], [e, n]] of a GeoJSON FeatureCollection (null when empty). */
export function boundsOf(collection) {
  let w = Infinity, s = Infinity, e = -Infinity, n = -Infinity;
  const visit = (c) => {
    if (typeof c[0] === "number") {
      w = Math.min(w, c[0]); e = Math.max(e, c[0]); s = Math.min(s, c[1]); n = Math.max(n, c[1]);
    } else c.forEach(visit);
  };
  for (const f of collection.features) if (f.geometry) visit(f.geometry.coordinates);
  return w === Infinity ? null : [[w, s], [e, n]];
}

/** A point marker at [lon, lat] (moved when it exists). */
export function placeMarker(map, marker, lonlat, color = "#d7263d") {
  if (marker) return marker.setLngLat(lonlat);
  return new maplibregl.Marker({ color }).setLngLat(lonlat).addTo(map);
}
