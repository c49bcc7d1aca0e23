// On shift: the phone's position shared as patrol fixes (POST /patrol/fixes through the
// outbox, so fixes taken offline are sent later, each batch once), and today's coverage of my
// cells (GET /patrol/coverage) with the patrolled cells drawn on the map.
import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "./api.js";
import { t } from "./i18n.js";
import { enqueue } from "./outbox.js";
import { html } from "./ui.js";

const BATCH_MS = 30000;
const PATROLLED = "patrolled-cells";

/** Draw the patrolled cells (hex ids of the my-cells source) on the map. */
function showPatrolled(map, cells) {
  const filter = ["in", ["id"], ["literal", cells]];
  if (map.getLayer(PATROLLED)) map.setFilter(PATROLLED, filter);
  else
    map.addLayer({ id: PATROLLED, type: "fill", source: "my-cells", filter,
      paint: { "fill-color": "#1b998b", "fill-opacity": 0.35 } });
}

/** The shift panel: share my position, today's coverage. */
export function Shift({ me, map }) {
  const [sharing, setSharing] = useState(false);
  const [coverage, setCoverage] = useState("");
  const fixes = useRef([]);
  useEffect(() => {
    if (!sharing) return undefined;
    const watch = navigator.geolocation.watchPosition((p) => {
      const fix = { ts: new Date(p.timestamp).toISOString(), lon: p.coords.longitude, lat: p.coords.latitude };
      if (Number.isFinite(p.coords.accuracy)) fix.accuracy_m = p.coords.accuracy;
      fixes.current.push(fix);
    }, () => setSharing(false), { enableHighAccuracy: true });
    const send = setInterval(() => {
      const batch = fixes.current.splice(0);
      if (batch.length) enqueue("/patrol/fixes", { fixes: batch }, { label: `${t("sharePos")} ×${batch.length}` }).catch(() => {});
    }, BATCH_MS);
    return () => { navigator.geolocation.clearWatch(watch); clearInterval(send); };
  }, [sharing]);
  async function today() {
    const start = new Date();
    start.setHours(0, 0, 0, 0);
    const query = `inspector=${me.inspector_id}&from=${start.toISOString()}&to=${new Date().toISOString()}`;
    try {
      const { data } = await api(`/patrol/coverage?${query}`);
      setCoverage(`${(data.coverage * 100).toFixed(0)}% · ${data.patrolled_cells.length}/${data.assigned_cells} · ${Math.round(data.on_duty_minutes)} min`);
      if (map) showPatrolled(map, data.patrolled_cells);
    } catch (error) {
      setCoverage(error.status === 404 ? "—" : error.message);
    }
  }
  return html`<p class="shift">
    <label><input type="checkbox" checked=${sharing} onChange=${(e) => setSharing(e.target.checked)} /> ${t("sharePos")}</label>
    <button class="link" onClick=${today}>${t("coverage")}</button> <small>${coverage}</small>
  </p>`;
}
