// Downloads a repo with the official @huggingface/hub client (snapshotDownload) into its own
// cache, as a JavaScript user would: node npm_download.mjs NODE_MODULES HUB_URL REPO CACHE_DIR [REVISION]
import { createRequire } from "node:module";
import path from "node:path";

const [modules, hubUrl, repo, cacheDir, revision] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(modules), "index.js"));
const hub = await import(require.resolve("@huggingface/hub"));
console.debug = () => {};
const folder = await hub.snapshotDownload({ repo, hubUrl, cacheDir, revision: revision || "main" });
console.log(folder);
