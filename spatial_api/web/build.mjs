// Builds the web app into dist/: the app bundle and its CSS (esbuild), MapLibre GL JS and its
// CSS copied as they are published (its build makes its own worker), each file named by a hash
// of its content, manifest.json listing them in load order for the server's /app page, and the
// service worker sw.js (a fixed name) holding that list; the page's inline bootstrap
// (src/boot.js, minified) goes into the manifest as `inline`. Modules the app imports lazily
// (`import()`: the shape editor with terra-draw) become chunks of their own, named by esbuild
// with a hash of their content and listed as `chunks`: served, but neither on the page nor
// kept by the service worker, so the first screen never downloads them.
import { createHash } from "node:crypto";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "dist");

/** The file name `name-HASH.ext` of some content. */
function hashed(name, ext, content) {
  const hash = createHash("sha256").update(content).digest("hex").slice(0, 12);
  return `${name}-${hash}.${ext}`;
}

const bundle = await esbuild.build({
  entryPoints: [join(here, "src/main.js"), join(here, "src/app.css")],
  bundle: true,
  minify: true,
  format: "esm",
  splitting: true,
  entryNames: "[name]",
  chunkNames: "[name]-[hash]",
  target: ["es2020"],
  write: false,
  outdir: out,
  legalComments: "none",
  logLevel: "warning",
});
await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });

const files = { scripts: [], styles: [], chunks: [] };
async function emit(kind, name, ext, content) {
  const file = hashed(name, ext, content);
  await writeFile(join(out, file), content);
  files[kind].push(file);
}
const maplibre = join(here, "node_modules/maplibre-gl/dist");
await emit("styles", "maplibre-gl", "css", await readFile(join(maplibre, "maplibre-gl.css")));
await emit("scripts", "maplibre-gl", "js", await readFile(join(maplibre, "maplibre-gl.js")));
const entries = new Set(["main.js", "app.css"]);
for (const f of bundle.outputFiles) {
  const name = f.path.slice(out.length + 1);
  if (entries.has(name)) {
    const ext = name.endsWith(".css") ? "css" : "js";
    await emit(ext === "css" ? "styles" : "scripts", "app", ext, Buffer.from(f.contents));
  } else {
    // a chunk: its name (hashed by esbuild) is how the app's code imports it
    await writeFile(join(out, name), f.contents);
    files.chunks.push(name);
  }
}
// the service worker keeps a fixed name (its scope is the app) and names this build's files
const sw = await esbuild.build({
  entryPoints: [join(here, "src/sw.js")],
  minify: true,
  write: false,
  banner: { js: `self.ASSETS=${JSON.stringify([...files.styles, ...files.scripts])};` },
  logLevel: "warning",
});
await writeFile(join(out, "sw.js"), sw.outputFiles[0].contents);
// the page's inline bootstrap: its text goes into the manifest (the server inlines it and
// allows it in the page's CSP by its hash)
const boot = await esbuild.build({
  entryPoints: [join(here, "src/boot.js")],
  minify: true,
  format: "iife",
  target: ["es2020"],
  write: false,
  logLevel: "warning",
});
files.inline = boot.outputFiles[0].text.trim();
await writeFile(join(out, "manifest.json"), JSON.stringify(files, null, 1) + "\n");
console.log(`web app built: ${[...files.styles, ...files.scripts].join(", ")}`);
