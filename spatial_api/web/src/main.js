// The CityHex web app: sign in with an API key (exchanged for a token, api.js), then the views
// the caller's role may use (the API judges every request; the app only hides what would be
// refused).
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api, freshHeaders, onSignedOut, signIn, signOut, signedIn, tokenClaims } from "./api.js";
import { language, setLanguage, t } from "./i18n.js";
import { loadStyle } from "./map.js";
import { deleteArea } from "./offline.js";
import { html, Message, useMessage } from "./ui.js";
import { Preview } from "./preview.js";
import { Inspector } from "./inspector.js";
import { Dispatcher } from "./dispatcher.js";
import { Editor } from "./editor.js";

const VIEWS = { inspector: Inspector, dispatcher: Dispatcher, editor: Editor, preview: Preview };
const ROLE_VIEWS = {
  admin: ["dispatcher", "editor", "inspector", "preview"],
  inspector: ["inspector", "preview"],
  dispatcher: ["dispatcher", "preview"],
  editor: ["editor", "preview"],
};

/** The views a caller may use, its own first (the inspector's only for a key that speaks
 * for an inspector: the task list is that person's). */
function viewsOf(me) {
  const views = ROLE_VIEWS[me.role] ?? ["preview"];
  return me.inspector_id ? views : views.filter((v) => v !== "inspector");
}

/** Forget what the session left on this device, however it ended (sign-out, a revoked or
 * expired key, a refused renewal): who it was, the service worker's kept answers and the
 * stored area file (a shared phone's next user must not read them). The outbox keeps its
 * items: each is sent only with the key that queued it (outbox.js). */
function forgetSession() {
  localStorage.removeItem("cityhex.me");
  if (window.caches) caches.delete("cityhex-app").catch(() => {});
  deleteArea().catch(() => {}); // the offline area file
}

/** Who the session is (kept for offline starts); a session the API refuses is ended. */
async function whoAmI() {
  try {
    const { data } = await api("/auth/me");
    localStorage.setItem("cityhex.me", JSON.stringify(data));
    return data;
  } catch (error) {
    const kept = localStorage.getItem("cityhex.me");
    if (error.status === 0 && kept) return JSON.parse(kept);
    signOut();
    throw error;
  }
}

function SignIn({ onSignedIn, notice }) {
  const [key, setKey] = useState("");
  const [remember, setRemember] = useState(false);
  const [message, say] = useMessage();
  async function submit(event) {
    event.preventDefault();
    try {
      await signIn(key.trim(), remember);
      onSignedIn(await whoAmI());
    } catch (error) {
      say(error.status === 401 ? t("badKey") : error.message, true);
    }
  }
  async function anonymous() {
    signOut();
    onSignedIn((await api("/auth/me")).data);
  }
  return html`<form class="signin" onSubmit=${submit}>
    <h1>${t("app")}</h1>
    ${notice ? html`<p class="msg error ended" role="status">${t("ended")}</p>` : null}
    <label>${t("key")}<input name="key" type="password" autocomplete="off" value=${key}
      onInput=${(e) => setKey(e.target.value)} placeholder=${t("keyHint")} /></label>
    <label class="remember"><input name="remember" type="checkbox" checked=${remember}
      onChange=${(e) => setRemember(e.target.checked)} /> ${t("remember")}</label>
    <button type="submit">${t("signin")}</button>
    <button type="button" class="link" onClick=${anonymous}>${t("preview")}</button>
    <${Message} ...${message} />
  </form>`;
}

function App() {
  // who the session was last time: the screen starts at once, /auth/me confirms it
  const [me, setMe] = useState(() =>
    signedIn() ? JSON.parse(localStorage.getItem("cityhex.me") || "null") : null,
  );
  const [ended, setEnded] = useState(false);
  const [, rerender] = useState(0);
  const [view, setView] = useState(location.hash.slice(2) || null);
  useEffect(() => {
    if (signedIn()) {
      // the token's claims start the screen (and its requests) without waiting for /auth/me
      freshHeaders().then(() => setMe((known) => known ?? tokenClaims()));
      whoAmI().then(setMe, () => setMe(null));
    }
    const onHash = () => setView(location.hash.slice(2));
    window.addEventListener("hashchange", onHash);
    const unwatch = onSignedOut(() => {
      forgetSession();
      setEnded(true);
      setMe(null);
    });
    return () => { window.removeEventListener("hashchange", onHash); unwatch(); };
  }, []);
  if (!me && signedIn()) return html`<p class="msg">…</p>`;
  if (!me) return html`<${SignIn} notice=${ended} onSignedIn=${(m) => { setEnded(false); setMe(m); }} />`;
  const views = viewsOf(me);
  const current = views.includes(view) ? view : views[0];
  const View = VIEWS[current];
  return html`<div class="shell">
    <header>
      <nav>${views.map((v) => html`<a href=${`#/${v}`} class=${v === current ? "on" : ""}
        data-view=${v}>${t(v)}</a>`)}</nav>
      <span class="who">${t("role")}: ${me.role}${me.name ? ` · ${me.name}` : ""}</span>
      <button class="link" onClick=${() => {
        setLanguage(language() === "zh" ? "en" : "zh");
        rerender((n) => n + 1);
      }}>${t("lang")}</button>
      <button class="link" onClick=${() => {
        signOut();
        forgetSession();
        setMe(null);
      }}>${t("signout")}</button>
    </header>
    <main><${View} key=${current + language()} me=${me} /></main>
  </div>`;
}

setLanguage(language());
if (signedIn()) loadStyle("city").catch(() => {}); // the maps' style, while /auth/me answers
if ("serviceWorker" in navigator) {
  // the app's files and the answers it read, for starting again without network
  navigator.serviceWorker.register("/app/sw.js", { scope: "/app" }).catch(() => {});
}
render(html`<${App} />`, document.getElementById("app"));
