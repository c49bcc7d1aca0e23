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

/** The shift panel: share my position (the first fix at once, then every 30 s, the rest
 * when sharing stops), and today's coverage as the API counts it (its "today", local). */
export function Shift({ me, map }) {
  const [sharing, setSharing] = useState(false);
  const [sent, setSent] = useState(0);
  const [coverage, setCoverage] = useState(null);
  const [message, setMessage] = useState("");
  const fixes = useRef([]);
  useEffect(() => {
    if (!sharing) return undefined;
    let first = true;
    const send = () => {
      const batch = fixes.current.splice(0);
      if (!batch.length) return;
      enqueue("/patrol/fixes", { fixes: batch }, { label: `${t("sharePos")} ×${batch.length}` })
        .then((answer) => answer && setSent((n) => n + answer.data.accepted))
        .catch((error) => setMessage(error.message));
    };
    const watch = navigator.geolocation.watchPosition((p) => {
      const fix = { ts: new Date(p.timestamp).toISOString(), lon: p.coords.longitude, lat: p.coords.latitude };
      if (Number.isFinite(p.coords.accuracy)) fix.accuracy_m = p.coords.accuracy;
      fixes.current.push(fix);
      if (first) { first = false; send(); }
    }, () => setSharing(false), { enableHighAccuracy: true });
    const every = setInterval(send, BATCH_MS);
    return () => { navigator.geolocation.clearWatch(watch); clearInterval(every); send(); };
  }, [sharing]);
  async function today() {
    try {
      const { data } = await api(`/patrol/coverage?inspector=${me.inspector_id}`);
      setCoverage(data);
      setMessage("");
      if (map) showPatrolled(map, data.patrolled_cells);
    } catch (error) {
      setMessage(error.message);
    }
  }
  return html`<div class="shift">
    <label><input type="checkbox" name="share" checked=${sharing}
      onChange=${(e) => setSharing(e.target.checked)} /> ${t("sharePos")}</label>
    ${sent ? html` <small class="sent">${t("fixesSent")}: <b>${sent}</b></small>` : null}
    <button class="link today" onClick=${today}>${t("coverage")}</button>
    ${coverage ? html`<dl class="coverage">
      <dt>${t("coverage")}</dt><dd class="rate">${coverage.coverage === null ? "—" : `${(coverage.coverage * 100).toFixed(1)}%`}</dd>
      <dt>${t("patrolled")}</dt><dd><span class="patrolled">${coverage.patrolled_cells.length}</span> / <span
        class="assigned">${coverage.assigned_cells}</span></dd>
      <dt>${t("onDuty")}</dt><dd class="minutes">${coverage.on_duty_minutes.toFixed(1)}</dd></dl>` : null}
    ${message ? html`<small class="msg error">${message}</small>` : null}
  </div>`;
}
