// Redrawing a line or a polygon on the map with terra-draw (its select mode on MapLibre): drag
// a vertex, drag a midpoint handle to add one, right-click a vertex to delete it. Loaded
// lazily (its own chunk) only when GIS staff start editing a geometry.
import { TerraDraw, TerraDrawLineStringMode, TerraDrawPolygonMode, TerraDrawSelectMode } from "terra-draw";
import { TerraDrawMapLibreGLAdapter } from "terra-draw-maplibre-gl-adapter";

/** Decimals kept: terra-draw refuses coordinates more precise than its adapter's precision
 * (9 decimals of a degree, about 0.1 mm). */
const PRECISION = 9;
const round = (c) => c.map((v) => Math.round(v * 10 ** PRECISION) / 10 ** PRECISION);

/** What the select mode lets a user do: move, add and delete vertices, not move the whole
 * feature; a shape may cross itself while being redrawn (the API judges validity on save and
 * its error says where). */
const EDITS = {
  draggable: false,
  selfIntersectable: true,
  coordinates: { draggable: true, deletable: true, midpoints: { draggable: true } },
};

/**
 * Start redrawing `geometry` (a LineString or a one-ring Polygon) on `map`; `onChange(geometry)` is called after every change with
 * the geometry as it now is. Returns `stop()`, which takes the editor off the map.
 */
export function editShape(map, geometry, onChange) {
  const draw = new TerraDraw({
    adapter: new TerraDrawMapLibreGLAdapter({ map, coordinatePrecision: PRECISION }),
    modes: [
      new TerraDrawPolygonMode(),
      new TerraDrawLineStringMode(),
      new TerraDrawSelectMode({
        flags: { polygon: { feature: EDITS }, linestring: { feature: EDITS } },
        keyEvents: null, // no key deletes the whole feature
        allowManualDeselection: false,
        allowManualSelection: false,
      }),
    ],
  });
  draw.start();
  const shape = {
    type: geometry.type,
    coordinates: geometry.type === "Polygon" ? [geometry.coordinates[0].map(round)] : geometry.coordinates.map(round),
  };
  const [added] = draw.addFeatures([{
    id: draw.getFeatureId(),
    type: "Feature",
    geometry: shape,
    properties: { mode: geometry.type === "Polygon" ? "polygon" : "linestring" },
  }]);
  if (!added.valid) {
    draw.stop();
    throw new Error(added.reason);
  }
  draw.setMode("select");
  draw.selectFeature(added.id);
  draw.on("change", (ids, type) => {
    if (type !== "update" || !ids.includes(added.id)) return;
    const now = draw.getSnapshotFeature(added.id);
    if (now) onChange({ type: now.geometry.type, coordinates: now.geometry.coordinates });
  });
  window.cityhexDraw = draw; // for the browser tests: the editor on screen
  return () => {
    draw.stop();
    delete window.cityhexDraw;
  };
}
