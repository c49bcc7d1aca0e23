// The page's inline bootstrap (built into manifest.json, inlined in /app's HTML before the
// stylesheets, allowed by the page's CSP through its hash): it runs while the page is still
// parsed, before any script is downloaded, and starts the first screen's requests at once —
// the token exchange for a remembered key, and the first view of an inspector's cells
// (/grid/overview.svg, sent with the token or the key itself, sized like the phone map box:
// the whole width, 45% of the height, scaled into the API's 64-2048 px), and once that has arrived, MapLibre's script (named by
// the page's `cityhex-maplibre`; not before, so it never shares the network with the first
// view). The app (api.js, map.js) takes them over.
(() => {
  const boot = (window.cityhexBoot = {});
  const stored = (store, name) => {
    try {
      return JSON.parse(store.getItem(name) || "null");
    } catch {
      return null;
    }
  };
  const key = localStorage.getItem("cityhex.key");
  const token = stored(sessionStorage, "cityhex.token");
  const me = stored(localStorage, "cityhex.me");
  const fresh = token && token.expires - Date.now() > 5000;
  if (key && !fresh) {
    boot.token = fetch("/auth/token", { method: "POST", headers: { Authorization: `Bearer ${key}` } });
    boot.token.catch(() => {}); // taken over by api.js, which reports a failure
  }
  const credential = fresh ? token.value : key;
  if (credential && (!me || me.inspector_id)) {
    // the box's size, scaled (aspect kept) into the sizes the API draws (64-2048 px a side)
    const box = [document.documentElement.clientWidth, Math.round(innerHeight * 0.45)];
    const scale = Math.min(1, 2048 / Math.max(...box));
    const [width, height] = box.map((v) => Math.min(2048, Math.max(64, Math.round(v * scale))));
    boot.overview = fetch(`/grid/overview.svg?width=${width}&height=${height}`, {
      headers: { Authorization: `Bearer ${credential}` },
    }).then((r) => (r.status === 200 ? r.text() : null)).catch(() => null);
    boot.maplibre = boot.overview.then(() => new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = document.querySelector("meta[name=cityhex-maplibre]").content;
      script.onload = resolve;
      script.onerror = () => reject(new Error("MapLibre did not load"));
      document.head.append(script);
    }));
    boot.maplibre.catch(() => {}); // taken over by map.js, which reports a failure
  }
})();
