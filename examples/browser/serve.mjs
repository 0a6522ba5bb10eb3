// Serves index.html at / and the bundle under /dist/, with node's http module only.
// `node serve.mjs [port]` (npm start) starts a tandem-server of its own (`cargo run`, documents
// in memory) unless SERVER names one (SERVER=ws://127.0.0.1:3030), builds the page, serves it on
// 127.0.0.1 (default port 8080; PORT or the first argument overrides it, 0 picks a free one)
// and prints the page's URL.
import http from "node:http";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "./build.mjs";
import { startServer, stopServer } from "./tandem-server.mjs";

const here = fileURLToPath(new URL(".", import.meta.url));
const dist = path.join(here, "dist");

const types = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".map": "application/json",
  // The browser compiles wasm while downloading it (instantiateStreaming) only with this type.
  ".wasm": "application/wasm",
};

async function respond(req, res) {
  const { pathname } = new URL(req.url, "http://localhost");
  let file;
  if (pathname === "/" || pathname === "/index.html") {
    file = path.join(here, "index.html");
  } else if (pathname.startsWith("/dist/")) {
    file = path.join(dist, path.normalize(decodeURIComponent(pathname.slice("/dist/".length))));
    if (!file.startsWith(dist + path.sep)) file = undefined; // no `..` out of dist/
  }
  try {
    if (!file) throw Object.assign(new Error("not found"), { code: "ENOENT" });
    const body = await readFile(file);
    res.writeHead(200, {
      "content-type": types[path.extname(file)] ?? "application/octet-stream",
      "cache-control": "no-store", // a rebuilt bundle is picked up by a plain reload
    });
    res.end(body);
  } catch (error) {
    res.writeHead(error.code === "ENOENT" || error.code === "EISDIR" ? 404 : 500).end();
  }
}

/** Starts serving on host:port; resolves to { server, url } once listening. */
export function serve({ host = "127.0.0.1", port = 0 } = {}) {
  const server = http.createServer((req, res) => void respond(req, res));
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      resolve({ server, url: `http://${host}:${server.address().port}/` });
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const port = Number(process.argv[2] ?? process.env.PORT ?? 8080);
  let sync = process.env.SERVER;
  let child;
  if (!sync) {
    console.log("starting tandem-server (cargo run -p tandem-server -- --memory)…");
    ({ child, url: sync } = await startServer(
      "cargo",
      ["run", "-q", "-p", "tandem-server", "--", "--memory", "--port", "0"],
      { cwd: path.join(here, "../.."), patience: 600_000 }, // the first run builds it
    ));
  }
  await build();
  const { url } = await serve({ port });
  console.log(`open ${url}?server=${sync} (in two windows to see them sync); Ctrl-C stops`);
  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.once(signal, async () => {
      if (child) await stopServer(child);
      process.exit(0);
    });
  }
}
