// Bundles src/main.js (and automerge's wasm, as a separate file) into dist/.
// `node build.mjs` builds; the test and serve.mjs import `build`.
import * as esbuild from "esbuild";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));

export async function build() {
  await esbuild.build({
    absWorkingDir: here,
    entryPoints: ["src/main.js"],
    bundle: true,
    format: "esm", // main.js awaits the wasm at top level, which only modules allow
    platform: "browser", // picks the browser builds of cbor-x, debug and isomorphic-ws
    target: "es2022",
    outdir: "dist",
    // `import url from "….wasm"` copies the file to dist/ and yields its URL, under /dist as
    // serve.mjs serves it (the page itself is at /).
    loader: { ".wasm": "file" },
    assetNames: "[name]-[hash]",
    publicPath: "/dist",
    sourcemap: true,
    logLevel: "warning",
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await build();
  console.log("built dist/");
}
