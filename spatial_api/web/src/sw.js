// The app's service worker: it keeps the page, the build's files (ASSETS, written in by the
// build) and the answers the app read (styles, cells, tasks, categories …), so the app starts
// again without network. Files with hashed names come from the cache; everything else from the
// network first, the cache when offline. Tiles offline come from the area file offline.js
// keeps in IndexedDB; tiles, that file and the event stream never pass here. Answers are matched whatever their Vary (the token in Authorization
// changes every few minutes; the cache is this signed-in browser's own and cleared whenever the
// session ends: sign-out, a revoked or expired key). The first view (/grid/overview.svg) is
// never kept.
const CACHE = "cityhex-app";
const ASSETS = self.ASSETS;

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(["/app", ...ASSETS.map((a) => `/app/assets/${a}`)])));
  self.skipWaiting();
});

self.addEventListener("activate", (event) => {
  const current = new Set(ASSETS.map((a) => `/app/assets/${a}`));
  const prune = caches.open(CACHE).then(async (cache) => {
    for (const request of await cache.keys()) {
      const path = new URL(request.url).pathname;
      if (path.startsWith("/app/assets/") && !current.has(path)) await cache.delete(request);
    }
  });
  event.waitUntil(prune.then(() => self.clients.claim()));
});

async function networkFirst(request) {
  const cache = await caches.open(CACHE);
  if (!navigator.onLine) {
    const kept = await cache.match(request, { ignoreVary: true });
    if (kept) return kept;
  }
  try {
    const response = await fetch(request);
    if (response.ok) await cache.put(request, response.clone());
    return response;
  } catch (error) {
    const kept = await cache.match(request, { ignoreVary: true });
    if (kept) return kept;
    throw error;
  }
}

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== location.origin) return;
  if (url.pathname === "/events" || /\.(mvt|pmtiles)$/.test(url.pathname)) return;
  // the first view is one person's picture (their cells, names): never kept for whoever comes next
  if (url.pathname === "/grid/overview.svg") return;
  if (url.pathname.startsWith("/app/assets/")) {
    event.respondWith(caches.match(event.request).then((hit) => hit || networkFirst(event.request)));
  } else {
    event.respondWith(networkFirst(event.request));
  }
});
