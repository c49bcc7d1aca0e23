// The outbox: writes made on the street (reports, workflow actions, position fixes) are kept
// in IndexedDB and sent in order when the network allows. Each carries an Idempotency-Key
// made when it was queued, so a retry after a lost answer never makes a second case.
import { openDB } from "idb";
import { api } from "./api.js";

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
export async function enqueue(path, body, { headers = {}, label = path } = {}) {
  const item = { key: crypto.randomUUID(), path, body, headers, label, queued: Date.now() };
  await (await db).put("items", item);
  await changed();
  let results = await flush();
  if (!results.has(item.key) && navigator.onLine) results = await flush(); // began before it
  const result = results.get(item.key);
  if (result?.error) throw result.error;
  return result?.answer ?? null;
}

async function send(item) {
  const headers = { ...item.headers, "Idempotency-Key": item.key };
  return api(item.path, { method: "POST", body: item.body, headers });
}

/** Send what waits, in order; stops at the first network failure (at once when the browser
 * knows it is offline). A map of item key → {answer} or {error}. */
export function flush() {
  if (!navigator.onLine) return Promise.resolve(new Map()); // no request bound to fail
  flushing ??= (async () => {
    const results = new Map();
    try {
      for (const item of await outboxItems()) {
        if (item.error) continue;
        try {
          results.set(item.key, { answer: await send(item) });
          await (await db).delete("items", item.key);
        } catch (error) {
          if (error.status === 0) break;
          results.set(item.key, { error });
          await (await db).put("items", { ...item, error: error.message, status: error.status });
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

/** Forget an item the API refused. */
export async function discard(key) {
  await (await db).delete("items", key);
  await changed();
}

window.addEventListener("online", () => flush());
setInterval(() => navigator.onLine && flush(), 15000);
