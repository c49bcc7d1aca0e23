// The outbox: writes made on the street (reports, workflow actions, position fixes) are kept
// in IndexedDB and sent in order when the network allows. Each carries an Idempotency-Key
// made when it was queued, so a retry after a lost answer never makes a second case. An item
// may carry photos (Blobs kept with it): a report's go to its case once it is created, an
// action's (自行处置) go first, so the action is sent only after the API recorded them; each
// photo has its own Idempotency-Key and is marked sent as soon as the API answered; a photo
// the API refuses (413, 415 …) after its report's case was created is marked refused with
// its reason and the others still go (an action's refused photo stops the action, failed).
// An item is sent only with the key that queued it (`owner`, the token's `sub`): after a
// session ends it waits, shown as needing that sign-in, and never goes under another key.
import { openDB } from "idb";
import { api, freshHeaders, keyDigest, tokenClaims } from "./api.js";

const db = openDB("cityhex-outbox", 1, {
  upgrade(database) {
    database.createObjectStore("items", { keyPath: "key" });
  },
});
const listeners = new Set();
let flushing = null;

/** Be told (with the list of items) whenever the outbox changes. */
export function watchOutbox(listener) {
  listeners.add(listener);
  outboxItems().then(listener);
  return () => listeners.delete(listener);
}

async function changed() {
  const items = await outboxItems();
  for (const listener of listeners) listener(items);
}

/** Everything waiting, oldest first. */
export async function outboxItems() {
  const items = await (await db).getAll("items");
  return items.sort((a, b) => a.queued - b.queued);
}

/**
 * Queue a POST and try to send it now. Resolves to the API's answer when it went through,
 * or to null when it waits in the outbox (offline); rejects with the API's error when the
 * API refused it (it is then kept, marked failed, for the user to see).
 */
export async function enqueue(path, body, { headers = {}, label = path, photos = [], stage = "report", photosFirst = false } = {}) {
  await freshHeaders().catch(() => {});
  const item = {
    key: crypto.randomUUID(), path, body, headers, label, queued: Date.now(), photosFirst,
    owner: owner(), keyDigest: owner() ? null : await keyDigest(), // the key, when no token names it
    photos: [...photos].map((file) => ({ key: crypto.randomUUID(), blob: file, name: file.name, stage, sent: false })),
  };
  await (await db).put("items", item);
  await changed();
  let results = await flush();
  if (!results.has(item.key) && navigator.onLine) results = await flush(); // began before it
  const result = results.get(item.key);
  if (result?.error) throw result.error;
  return result?.answer ?? null;
}

/** The key the session speaks with (`key:N`), null without a session. */
function owner() {
  return tokenClaims()?.sub ?? null;
}

/** Whether the current session may send `item` (the one that queued it; an item from before
 * owners were kept goes with any). */
export function mine(item) {
  if (owner() === null) return false;
  return item.owner ? item.owner === owner() : !item.keyDigest;
}

/** Items queued without a token (no `sub` then) become the session's when its key is theirs. */
async function adopt() {
  const digest = owner() && (await keyDigest());
  if (!digest) return;
  for (const item of await outboxItems()) {
    if (!item.owner && item.keyDigest === digest) await keep({ ...item, owner: owner() });
  }
}

/** An answer refusing a photo itself (too large, not an image …), not the session or the case. */
function refusesPhoto(error) {
  return error.status >= 400 && error.status < 500 && ![401, 403, 404, 408, 409, 412, 429].includes(error.status);
}

/** Keep what was sent of an item (its answer, its photos marked sent). */
async function keep(item) {
  await (await db).put("items", item);
  await changed();
  return item;
}

/** Upload the item's photos not yet sent to `path`, each once (its own key). */
async function sendPhotos(item, path) {
  for (const [i, photo] of (item.photos ?? []).entries()) {
    if (photo.sent || photo.refused) continue;
    const form = new FormData();
    form.append("file", photo.blob, photo.name);
    form.append("stage", photo.stage);
    let done = { sent: true };
    try {
      await api(path, { method: "POST", body: form, headers: { "Idempotency-Key": photo.key } });
    } catch (error) {
      // an action's photo refused stops the action (it must not meet the case without it)
      if (item.photosFirst || !refusesPhoto(error)) throw error;
      done = { refused: `${error.status} ${error.message}` };
    }
    item = await keep({ ...item, photos: item.photos.map((p, j) => (j === i ? { ...p, ...done } : p)) });
  }
  return item;
}

/** Send an item (photos first for an action on a case, after the case for a report); its
 * answer with `photos`, the number of photos it carried, and `refused`, those the API
 * refused ({n: 1-based, name, reason}). */
async function send(item) {
  const count = item.photos?.length ?? 0;
  if (item.photosFirst) item = await sendPhotos(item, item.path.replace(/\/transitions$/, "/attachments"));
  let answer = item.answer;
  if (!answer) {
    const headers = { ...item.headers, "Idempotency-Key": item.key };
    answer = await api(item.path, { method: "POST", body: item.body, headers });
    if (count && !item.photosFirst) item = await keep({ ...item, answer });
  }
  if (!item.photosFirst) item = await sendPhotos(item, `/incidents/${answer.data.id}/attachments`);
  const refused = (item.photos ?? []).map((p, i) => ({ n: i + 1, name: p.name, reason: p.refused }))
    .filter((p) => p.reason);
  return { ...answer, photos: count, refused };
}

/** Send what waits, in order; stops at the first network failure (at once when the browser
 * knows it is offline). A map of item key → {answer} or {error}. */
export function flush() {
  if (!navigator.onLine) return Promise.resolve(new Map()); // no request bound to fail
  flushing ??= (async () => {
    const results = new Map();
    try {
      await freshHeaders().catch(() => {});
      await adopt();
      for (const item of await outboxItems()) {
        if (item.error || item.done || !mine(item)) continue;
        try {
          const answer = await send(item);
          results.set(item.key, { answer });
          // sent; one with refused photos stays listed (done) until the user dismisses it
          if (answer.refused.length) await keep({ ...(await (await db).get("items", item.key)), done: true });
          else await (await db).delete("items", item.key);
        } catch (error) {
          if (error.status === 0 || error.status === 401) break; // offline, or the session ended
          results.set(item.key, { error });
          const sent = (await (await db).get("items", item.key)) ?? item; // its photos sent so far
          await (await db).put("items", { ...sent, error: error.message, status: error.status });
        }
        await changed();
      }
    } finally {
      flushing = null;
    }
    await changed();
    return results;
  })();
  return flushing;
}

/** Forget an item the API refused (or a sent one whose refused photos were seen). */
export async function discard(key) {
  await (await db).delete("items", key);
  await changed();
}

window.addEventListener("online", () => flush());
setInterval(() => navigator.onLine && flush(), 15000);
