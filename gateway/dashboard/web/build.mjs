// Bundles the dashboard with esbuild into one directory of static files (index.html, app.js,
// app.css, favicon.svg). gateway/dashboard/build.rs runs it with --node-modules pointing at the
// npm packages it installed outside the clone; developers run `npm run build` / `npm run dev`.
//
//   node build.mjs --out DIR [--node-modules DIR] [--serve [--port 8080]]
//
// --serve rebuilds on change and serves DIR on http://127.0.0.1:PORT, proxying /api/ to the
// gateway named by HYPHAE_GATEWAY (e.g. https://10.213.0.10:8443; its certificate is not
// checked: this is a developer preview, never shipped).
import { createRequire } from "node:module";
import { copyFileSync, mkdirSync, readFileSync, existsSync } from "node:fs";
import { dirname, join, resolve, extname } from "node:path";
import { fileURLToPath } from "node:url";
import http from "node:http";
import https from "node:https";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const out = resolve(opt("--out") ?? "dist");
const nodeModules = opt("--node-modules") ? resolve(opt("--node-modules")) : join(here, "node_modules");
const serve = args.includes("--serve");
const port = Number(opt("--port") ?? 8080);

const require = createRequire(join(nodeModules, "noop.js"));
const esbuild = require("esbuild");

mkdirSync(out, { recursive: true });
const copyStatic = () => {
  for (const f of ["index.html", "favicon.svg"]) copyFileSync(join(here, "static", f), join(out, f));
};

const options = {
  entryPoints: { app: join(here, "src", "main.tsx") },
  outdir: out,
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2020", "chrome100", "firefox100", "safari15"],
  jsx: "automatic",
  jsxImportSource: "preact",
  nodePaths: [nodeModules],
  legalComments: "none",
  sourcemap: serve ? "inline" : false,
  logLevel: "warning",
  metafile: true,
  plugins: [{ name: "static", setup: (b) => b.onEnd(copyStatic) }],
};

if (!serve) {
  const result = await esbuild.build(options);
  const sizes = Object.entries(result.metafile.outputs).map(
    ([f, o]) => `${f.split("/").pop()} ${(o.bytes / 1024).toFixed(1)} KiB`,
  );
  console.log(`dashboard: ${sizes.join(", ")}`);
} else {
  const ctx = await esbuild.context(options);
  await ctx.watch();
  const gateway = process.env.HYPHAE_GATEWAY;
  const types = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml" };
  http
    .createServer((req, res) => {
      if (req.url.startsWith("/api/")) {
        if (!gateway) {
          res.writeHead(502, { "content-type": "application/json" });
          res.end(JSON.stringify({ error: { code: "no_gateway", message: "set HYPHAE_GATEWAY=https://node:8443" } }));
          return;
        }
        const target = new URL(req.url, gateway);
        const up = (target.protocol === "https:" ? https : http).request(
          target,
          { method: req.method, headers: { ...req.headers, host: target.host }, rejectUnauthorized: false },
          (r) => {
            // The gateway's cookie is Secure; the preview is plain HTTP on localhost.
            const headers = { ...r.headers };
            if (headers["set-cookie"]) headers["set-cookie"] = headers["set-cookie"].map((c) => c.replace(/;\s*Secure/i, ""));
            res.writeHead(r.statusCode ?? 502, headers);
            r.pipe(res);
          },
        );
        up.on("error", (e) => {
          res.writeHead(502, { "content-type": "application/json" });
          res.end(JSON.stringify({ error: { code: "gateway_unreachable", message: String(e) } }));
        });
        req.pipe(up);
        return;
      }
      const path = req.url.split("?")[0];
      let file = join(out, path);
      if (path === "/" || !existsSync(file) || !extname(file)) file = join(out, "index.html");
      res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" });
      res.end(readFileSync(file));
    })
    .listen(port, "127.0.0.1", () => console.log(`dashboard preview on http://127.0.0.1:${port}/ (api → ${gateway ?? "none"})`));
}
