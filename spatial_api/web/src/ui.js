// What every view shares: preact with htm, a map element, a message line.
import { h } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import htm from "htm";
import { t } from "./i18n.js";
import { makeMap } from "./map.js";

export const html = htm.bind(h);

/**
 * A map filling its box; `onMap(map)` is called once it has loaded. `view` (a promise of
 * MapLibre options, such as the bounds to show) is awaited while the style loads.
 */
export function MapBox({ onMap, style, keep, view, className = "map" }) {
  const box = useRef(null);
  const [failed, setFailed] = useState("");
  useEffect(() => {
    let map = null;
    let gone = false;
    makeMap(box.current, { style, keep, view }).then((m) => {
      map = m;
      if (gone) m.remove();
      else onMap?.(m);
    }, (error) => {
      // MapLibre's script or the style did not load: said in the map's box, not left blank
      if (!gone) setFailed(`${t("mapFailed")}: ${error.message}`);
    });
    return () => {
      gone = true;
      map?.remove();
    };
  }, []);
  return html`<div class=${className} ref=${box}>${failed ? html`<p class="msg error map-failed" role="alert">${failed}</p>` : null}</div>`;
}

/** A line telling the user what happened (error in red). */
export function Message({ text, error }) {
  if (!text) return null;
  return html`<p class=${error ? "msg error" : "msg"} role="status">${text}</p>`;
}

/** [message, setMessage(text, error?)] as a hook. */
export function useMessage() {
  const [message, set] = useState({ text: "", error: false });
  return [message, (text, error = false) => set({ text, error })];
}
