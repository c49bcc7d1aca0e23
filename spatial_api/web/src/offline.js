// Offline map: "download my area" stores one PMTiles file of the inspector's cells (z12-17,
// GET /tiles/export/area.pmtiles, CityHex's export) as a Blob in IndexedDB. Every tile the
// map asks for goes through the `cityhex://` protocol below: from the network when online,
// and offline from that file, read with the `pmtiles` package (a tile it lacks is drawn
// empty). The file's ETag lets a new download be skipped when nothing changed.
import { openDB } from "idb";
import { PMTiles } from "pmtiles";
import { ApiError, authHeaders, freshHeaders } from "./api.js";

const PROTOCOL = "cityhex";
const AREA = "area"; // the one stored file's key
const TILE_PATH = /^\/tiles\/([^/]+)\/(\d+)\/(\d+)\/(\d+)\.mvt$/;
const db = openDB("cityhex-area", 1, {
  upgrade(database) {
    database.createObjectStore("files");
  },
});
let archive = null; // a promise of {pmtiles, layers} for the stored file, or of null

/** A PMTiles source reading byte ranges of a Blob (the file kept in IndexedDB). */
class BlobSource {
  constructor(blob, key) {
    this.blob = blob;
    this.key = key;
  }

  getKey() {
    return this.key;
  }

  async getBytes(offset, length) {
    return { data: await this.blob.slice(offset, offset + length).arrayBuffer() };
  }
}

/** The stored file opened with `pmtiles` (once), or null when none is stored. */
function storedArchive() {
  archive ??= db.then((d) => d.get("files", AREA)).then((kept) =>
    kept ? { pmtiles: new PMTiles(new BlobSource(kept.blob, `area-${kept.etag}`)), layers: kept.layers } : null);
  return archive;
}

/** A tile from the stored file when it holds the URL's layers (an empty tile otherwise). */
async function storedTile(url) {
  const { pathname, search } = new URL(url);
  const match = pathname.match(TILE_PATH);
  const kept = match && !search ? await storedArchive() : null;
  if (!kept || decodeURIComponent(match[1]) !== kept.layers) return { data: new ArrayBuffer(0) };
  const found = await kept.pmtiles.getZxy(Number(match[2]), Number(match[3]), Number(match[4]));
  return { data: found ? found.data : new ArrayBuffer(0) };
}

/** A tile from the network, or from the stored file when the network fails (or is gone). */
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
  return storedTile(real);
}

/** Let MapLibre answer `cityhex://` tile URLs through `tile` (network, else the file). */
export function addTileProtocol(maplibregl) {
  maplibregl.addProtocol(PROTOCOL, tile);
}

/** Route tile URLs of a style's vector sources through the protocol (their TileJSONs read
 * now, so the map asks for tiles at once). */
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

/** The tile layers of the map's base source: the first vector source whose tiles carry no
 * filter (case layers are live data and stay online-only). */
function baseLayers(map) {
  for (const source of Object.values(map.getStyle().sources)) {
    for (const template of source.tiles ?? []) {
      const { pathname, search } = new URL(template.slice(PROTOCOL.length + 3));
      const match = pathname.match(/^\/tiles\/([^/]+)\//);
      if (match && !search) return decodeURIComponent(match[1]);
    }
  }
  throw new Error("the style has no base tile source");
}

/** What is stored: {layers, etag, size (bytes), date (ms)}, or null. */
export async function storedArea() {
  const kept = await (await db).get("files", AREA);
  return kept ? { layers: kept.layers, etag: kept.etag, size: kept.size, date: kept.date } : null;
}

/** Forget the stored file. */
export async function deleteArea() {
  await (await db).delete("files", AREA);
  archive = null;
}

/**
 * Download the PMTiles file of my cells for the map's base layers and keep it;
 * `progress(received, total)` is told as bytes arrive (total 0 when unknown). A file still
 * current (same ETag) is not downloaded again. Resolves to storedArea().
 */
export async function downloadArea(map, progress) {
  const layers = baseLayers(map);
  const kept = await storedArea();
  const current = kept && kept.layers === layers ? { "If-None-Match": kept.etag } : {};
  const response = await fetch(`/tiles/export/area.pmtiles?layers=${encodeURIComponent(layers)}`, {
    headers: await freshHeaders(current),
  });
  if (response.status === 304) {
    await (await db).put("files", { ...(await (await db).get("files", AREA)), date: Date.now() }, AREA);
    return storedArea();
  }
  if (!response.ok) {
    const error = await response.json().catch(() => ({}));
    throw new ApiError(response.status, error.code || "error", error.message || response.statusText);
  }
  const total = Number(response.headers.get("content-length")) || 0;
  const reader = response.body.getReader();
  const chunks = [];
  let received = 0;
  for (let part = await reader.read(); !part.done; part = await reader.read()) {
    chunks.push(part.value);
    received += part.value.length;
    progress(received, total);
  }
  const blob = new Blob(chunks, { type: "application/vnd.pmtiles" });
  const etag = response.headers.get("etag");
  await (await db).put("files", { blob, etag, layers, size: blob.size, date: Date.now() }, AREA);
  archive = null;
  return storedArea();
}
