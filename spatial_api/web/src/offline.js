// Offline map: "download my area" stores the vector tiles (z12-17) covering the inspector's
// cells in the browser's Cache Storage; every tile the map asks for goes through the
// `cityhex://` protocol below, which answers from the network and, offline, from that cache.
import { authHeaders } from "./api.js";

const CACHE = "cityhex-tiles";
const ZOOMS = [12, 13, 14, 15, 16, 17];
const MAX_TILES = 5000;
const PROTOCOL = "cityhex";

/** The x/y range of the tiles covering [[w, s], [e, n]] at zoom z (Web Mercator). */
export function tileRange([[w, s], [e, n]], z) {
  const count = 2 ** z;
  const x = (lon) => Math.min(count - 1, Math.floor(((lon + 180) / 360) * count));
  const y = (lat) => {
    const r = (lat * Math.PI) / 180;
    return Math.min(count - 1, Math.floor(((1 - Math.log(Math.tan(r) + 1 / Math.cos(r)) / Math.PI) / 2) * count));
  };
  return { x0: x(w), x1: x(e), y0: y(n), y1: y(s) };
}

/** A tile from the network, or from the cache when the network fails (or is known gone). */
async function tile({ url }, abort) {
  const real = url.slice(PROTOCOL.length + 3);
  if (navigator.onLine) {
    try {
      const response = await fetch(real, { headers: authHeaders(), signal: abort.signal });
      if (response.ok) return { data: await response.arrayBuffer() };
      throw new Error(`tile ${response.status}`);
    } catch (error) {
      if (error.name === "AbortError" || navigator.onLine) throw error;
    }
  }
  const kept = typeof caches === "undefined" ? null : await caches.match(real);
  return { data: kept ? await kept.arrayBuffer() : new ArrayBuffer(0) }; // offline: blank
}

/** Let MapLibre answer `cityhex://` tile URLs through `tile` (network, else the cache). */
export function addTileProtocol(maplibregl) {
  maplibregl.addProtocol(PROTOCOL, tile);
}

/** Route tile URLs of a style's vector sources through the caching protocol (their
 * TileJSONs read now, so the map asks for tiles at once). */
export async function offlineCapable(doc) {
  const vector = Object.values(doc.sources).filter((s) => s.type === "vector" && s.url);
  const tilejsons = await Promise.all(
    vector.map((s) => fetch(s.url, { headers: authHeaders() }).then((r) => r.json())),
  );
  for (const [source, tilejson] of vector.map((s, i) => [s, tilejsons[i]])) {
    delete source.url;
    Object.assign(source, {
      tiles: tilejson.tiles.map((t) => `${PROTOCOL}://${t}`),
      minzoom: tilejson.minzoom,
      maxzoom: tilejson.maxzoom,
    });
    if (tilejson.bounds) source.bounds = tilejson.bounds;
  }
  return doc;
}

/**
 * Store every tile of the map's vector sources covering `bounds` at z12-17; `progress(n, of)`
 * is told as tiles arrive. Resolves to the number of tiles stored.
 */
export async function downloadArea(map, bounds, progress) {
  const urls = [];
  for (const source of Object.values(map.getStyle().sources)) {
    for (const template of source.tiles ?? []) {
      if (!template.startsWith(`${PROTOCOL}://`)) continue;
      const plain = template.slice(PROTOCOL.length + 3);
      for (const z of ZOOMS.filter((z) => z >= (source.minzoom ?? 0) && z <= (source.maxzoom ?? 22))) {
        const { x0, x1, y0, y1 } = tileRange(bounds, z);
        for (let x = x0; x <= x1; x++)
          for (let y = y0; y <= y1; y++)
            urls.push(plain.replace("{z}", z).replace("{x}", x).replace("{y}", y));
      }
    }
  }
  if (urls.length > MAX_TILES) throw new Error(`${urls.length} tiles > ${MAX_TILES}`);
  const cache = await caches.open(CACHE);
  let done = 0;
  const next = async () => {
    while (urls.length) {
      const url = urls.pop();
      const response = await fetch(url, { headers: authHeaders() });
      if (response.ok) await cache.put(url, response);
      progress(++done);
    }
  };
  await Promise.all([next(), next(), next(), next()]);
  return done;
}
