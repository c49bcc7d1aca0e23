// A case's page, shared by the inspector and the dispatcher: its data, history, and the
// actions the API says the caller may take now. Each action names the version it was taken
// on (If-Match); a 412 reloads the case and says so.
import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "./api.js";
import { t, when } from "./i18n.js";
import { enqueue } from "./outbox.js";
import { html, Message, useMessage } from "./ui.js";

/** The case `id` with its actions; `viaOutbox` queues actions when offline (inspectors). */
export function CaseView({ id, onClose, onChanged, viaOutbox = false }) {
  const [found, setFound] = useState(null);
  const [steps, setSteps] = useState([]);
  const [note, setNote] = useState("");
  const [message, say] = useMessage();
  const photos = useRef(null); // 自行处置's photos: uploaded before the action is sent
  async function load() {
    const { data, etag } = await api(`/incidents/${id}`);
    setFound({ data, etag });
    setSteps((await api(`/incidents/${id}/transitions`)).data.transitions);
  }
  useEffect(() => {
    load().catch((e) => say(e.message, true));
  }, [id]);
  async function act(action) {
    const body = note ? { action, note } : { action };
    const headers = { "If-Match": found.etag };
    const path = `/incidents/${id}/transitions`;
    const selfClose = action === "self_close";
    if (selfClose && !note.trim()) return say(t("noteRequired"), true); // the API's rule too
    const files = selfClose ? [...(photos.current?.files ?? [])] : [];
    try {
      // a 自行处置's photos go first (outbox order), so the action meets them recorded
      const answer = viaOutbox || files.length
        ? await enqueue(path, body, { headers, label: `${t("case")} ${id}: ${action}`,
          photos: files, stage: "report", photosFirst: true })
        : await api(path, { method: "POST", body, headers });
      if (photos.current) photos.current.value = "";
      if (answer === null) {
        say(t("queued"));
        return;
      }
      say(`${action} ✓`);
      setNote("");
      await load();
      onChanged?.();
    } catch (error) {
      if (error.status === 412) {
        await load();
        say(t("changed"), true);
      } else say(error.message, true);
    }
  }
  if (!found) return html`<section class="case"><${Message} ...${message} /></section>`;
  const c = found.data;
  return html`<section class="case" data-case=${c.id}>
    <h3>${t("case")} ${c.id} · ${c.category_code} · <span class="status">${c.status}</span>
      ${c.overdue ? html` <span class="overdue">${t("overdue")}</span>` : null}
      <button class="link close" onClick=${onClose}>×</button></h3>
    <p>${c.description}</p>
    <p class="small">${t("cell")} ${c.cell} · ${t("deadline")} ${when(c.deadline)}</p>
    <h4>${t("actions")}</h4>
    <input class="note" placeholder=${t("note")} value=${note}
      onInput=${(e) => setNote(e.target.value)} />
    ${(c.allowed_actions ?? []).some((a) => a.action === "self_close") ? html`<label>${t("spotPhoto")}
      <input type="file" class="spot-photo" accept="image/*" multiple ref=${photos} /></label>` : null}
    <div class="actions">${(c.allowed_actions ?? []).map((a) => html`<button
      data-action=${a.action} onClick=${() => act(a.action)}>${a.label || a.action}</button>`)}</div>
    <${Message} ...${message} />
    <h4>${t("history")}</h4>
    <ol class="history">${steps.map((s) => html`<li>${when(s.at)} · ${s.action}
      ${s.from ?? ""} → ${s.to} · ${s.actor}${s.note ? ` · ${s.note}` : ""}</li>`)}</ol>
  </section>`;
}
