// The inspector's first view: the picture of their cells over the city's base layers that the
// server draws with PostGIS (GET /grid/overview.svg, asked for by the page's bootstrap before
// any script arrived), shown over the map's box until MapLibre has drawn the same view.
import { useEffect, useState } from "preact/hooks";
import { firstView } from "./map.js";
import { html } from "./ui.js";

/** The first view over the map's box, until `map` (MapLibre, opened on the same bounds) has
 * drawn its tiles. Sets `window.cityhexFirstView` (ms) once the picture is painted. */
export function FirstView({ map }) {
  const [svg, setSvg] = useState(null);
  const [gone, setGone] = useState(false);
  useEffect(() => {
    firstView().then(setSvg);
  }, []);
  useEffect(() => {
    if (!svg) return;
    // painted: the frame after insertion has been drawn
    requestAnimationFrame(() => setTimeout(() => { window.cityhexFirstView ??= performance.now(); }));
  }, [svg]);
  useEffect(() => {
    if (!map) return;
    if (map.loaded() && map.areTilesLoaded()) setGone(true);
    else map.once("idle", () => setGone(true));
  }, [map]);
  if (!svg || gone) return null;
  return html`<div class="first-view" aria-hidden="true" dangerouslySetInnerHTML=${{ __html: svg }}></div>`;
}
