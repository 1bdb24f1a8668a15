// Drives the dashboard in headless Chromium (playwright-core) against a real gateway, the way a
// person would: log in, look at each page, upload/download/delete a file, admit a pending node.
// Run by tests/browser.rs, which starts the cluster and passes everything in the environment:
//
//   HYPHAE_URL            https://<node>:8443/ of a gateway (the mesh CA is not trusted here:
//                         the context ignores certificate errors, the test checks the TLS path
//                         elsewhere)
//   HYPHAE_PASSWORD       the admin password
//   HYPHAE_EXPECT_NODES   comma-separated node ids the topology must show
//   HYPHAE_PENDING_NODE   id of a node waiting for admission, to admit through the UI (optional)
//   HYPHAE_FILES          "1" to exercise the file browser (upload, download, stat, delete)
//   HYPHAE_NAME_TARGET    an IP to point a test name at through the Names page (optional)
//   HYPHAE_VM             name of a replicated VM running on the gateway's node, to find on
//                         the VMs page with its stats and console (optional)
//   HYPHAE_JOB_ID         a finished compute job the Jobs page must show with its tiles (optional)
//   HYPHAE_ARTIFACTS      directory for screenshots
//   HYPHAE_CHROMIUM       the browser binary (default /usr/bin/chromium)
//
// Prints one line per step; exits non-zero with the reason on the first failure.
"use strict";

const { chromium } = require("playwright-core");
const fs = require("node:fs");
const path = require("node:path");
const crypto = require("node:crypto");

const env = (k, d) => process.env[k] ?? d;
const url = env("HYPHAE_URL");
const password = env("HYPHAE_PASSWORD");
const expectNodes = env("HYPHAE_EXPECT_NODES", "").split(",").filter(Boolean);
const pendingNode = env("HYPHAE_PENDING_NODE", "");
const withFiles = env("HYPHAE_FILES", "0") === "1";
const nameTarget = env("HYPHAE_NAME_TARGET", "");
const vmName = env("HYPHAE_VM", "");
const jobId = env("HYPHAE_JOB_ID", "");
const artifacts = env("HYPHAE_ARTIFACTS", "browser-artifacts");
const timeout = Number(env("HYPHAE_STEP_TIMEOUT_MS", "60000"));
if (!url || !password) {
  console.error("HYPHAE_URL and HYPHAE_PASSWORD are required");
  process.exit(2);
}
fs.mkdirSync(artifacts, { recursive: true });

const pages = ["overview", "nodes", "storage", "files", "admission", "names", "events", "vms", "jobs"];
const step = (msg) => console.log(`browser: ${msg}`);
/** The page in use, for a screenshot when a step fails. */
let current = null;

async function shot(page, name) {
  const file = path.join(artifacts, `${name}.png`);
  // Let layouts settle (force layout animation, charts) before the picture.
  await page.waitForTimeout(600);
  await page.screenshot({ path: file, fullPage: !name.endsWith("menu") });
  step(`screenshot ${file}`);
}

async function login(page, size) {
  // Certificate errors are NOT ignored: the browser must trust the gateway through the mesh's
  // web CA, imported into its NSS database by the test (as `hyphae ca export` users do).
  const response = await page.goto(url, { waitUntil: "domcontentloaded" });
  const tls = response ? await response.securityDetails() : null;
  if (!tls) throw new Error("the dashboard did not arrive over TLS");
  step(`${size}: ${tls.protocol} certificate for ${tls.subjectName} issued by ${tls.issuer}`);
  await page.locator('input[name="password"]').waitFor({ timeout });
  if (size === "desktop") {
    // A wrong password is refused with a message, and the form stays.
    await page.fill('input[name="password"]', `${password}-wrong`);
    await page.click('button[type="submit"]');
    await page.getByText("Wrong password.").waitFor({ timeout });
    step("wrong password refused");
    await shot(page, `${size}-login`);
  }
  await page.fill('input[name="password"]', password);
  await page.click('button[type="submit"]');
  await page.locator('[data-testid="nav-overview"]').waitFor({ state: "attached", timeout });
  step(`${size}: logged in`);
}

async function go(page, name, size) {
  if (size === "phone") {
    await page.click('[data-testid="menu"]');
    await page.locator(`[data-testid="nav-${name}"]`).waitFor({ state: "visible", timeout });
  }
  await page.click(`[data-testid="nav-${name}"]`);
  await page.waitForURL((u) => u.pathname === (name === "overview" ? "/" : `/${name}`), { timeout });
}

async function topologyShowsEveryNode(page) {
  for (const id of expectNodes) {
    await page.locator(`[data-testid="topology-node"][data-node-id="${id}"]`).waitFor({ state: "attached", timeout });
  }
  const shown = await page.locator('[data-testid="topology-node"]').count();
  if (shown < expectNodes.length) throw new Error(`topology shows ${shown} nodes, expected ${expectNodes.length}`);
  step(`topology shows all ${expectNodes.length} expected nodes (${shown} drawn)`);
}

async function files(page) {
  const name = `browser-test-${Date.now()}.bin`;
  const body = crypto.randomBytes(3 * 1024 * 1024 + 12345);
  await page.setInputFiles('[data-testid="upload-input"]', { name, mimeType: "application/octet-stream", buffer: body });
  await page.locator('[data-testid="upload"][data-state="done"]').waitFor({ timeout });
  step(`uploaded ${name} (${body.length} bytes)`);
  const row = page.locator(`[data-testid="file-row"][data-path="${name}"]`);
  await row.waitFor({ timeout });
  const [download] = await Promise.all([page.waitForEvent("download", { timeout }), row.locator('[data-testid="download"]').click()]);
  const got = fs.readFileSync(await download.path());
  if (!got.equals(body)) throw new Error(`downloaded ${got.length} bytes that differ from the ${body.length} uploaded`);
  step("downloaded the same bytes");
  await row.locator("button.linklike").click();
  await page.locator(".shard").first().waitFor({ timeout });
  step("stat panel shows shard placement");
  return { name };
}

/** The VMs page shows the VM with its stats, a pause/lag chart and its console. */
async function vms(page) {
  const card = page.locator(`[data-testid="vms-page"] .card:has-text("${vmName}")`);
  await card.waitFor({ timeout });
  await card.locator('[data-testid="vm-stats"] .stat').nth(5).waitFor({ timeout });
  const stats = (await card.locator('[data-testid="vm-stats"]').innerText()).replace(/\s+/g, " ");
  for (const label of ["HOST", "REPLICAS", "EPOCH RATE", "PAUSE", "LAG", "THROTTLE"]) {
    if (!stats.toUpperCase().includes(label)) throw new Error(`VM stats lack ${label}: ${stats}`);
  }
  step(`VM ${vmName} listed: ${stats}`);
  // Samples every 2 s: the chart appears after a few.
  await card.locator(".uplot").waitFor({ timeout });
  step("pause/lag chart drawn");
  const consoleBox = card.locator('[data-testid="vm-console"]');
  await page.waitForFunction((el) => el && el.textContent && el.textContent.trim() !== "…", await consoleBox.elementHandle(), { timeout });
  step("console tail shown");
}

async function names(page) {
  const name = "browser-test";
  await page.fill('input[name="name"]', name);
  await page.fill('input[name="target"]', nameTarget);
  await page.click('form:has(input[name="target"]) button[type="submit"]');
  const row = page.locator(`[data-testid="name-row"][data-name="${name}"]`);
  await row.waitFor({ timeout });
  step(`set the name ${name} -> ${nameTarget}`);
  await page.fill('input[name="lookup"]', name);
  await page.click('form:has(input[name="lookup"]) button[type="submit"]');
  await page.locator('[data-testid="record"]', { hasText: nameTarget }).waitFor({ timeout });
  step(`${name} resolves to ${nameTarget}`);
}

async function jobs(page) {
  // The job is listed, and its tiles are drawn, every one verified.
  const row = page.locator('[data-testid="job-row"]', { hasText: jobId.slice(0, 10) });
  await row.waitFor({ timeout });
  await row.click();
  await page.locator('[data-testid="tile-grid"] .tile[data-state="done"]').first().waitFor({ timeout });
  const notDone = await page.locator('[data-testid="tile-grid"] .tile:not([data-state="done"])').count();
  if (notDone) throw new Error(`${notDone} tiles of the finished job are not shown as done`);
  await page.locator('[data-testid="job-workers"] tbody tr').first().waitFor({ timeout });
  step(`the jobs page shows job ${jobId} with its verified tiles and workers`);
}

async function admit(page) {
  const item = page.locator(`[data-testid="pending-node"][data-node-id="${pendingNode}"]`);
  await item.waitFor({ timeout });
  step(`pending node ${pendingNode} listed`);
  return item;
}

(async () => {
  const browser = await chromium.launch({
    executablePath: env("HYPHAE_CHROMIUM", "/usr/bin/chromium"),
    headless: true,
    args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  try {
    // --- desktop: every check, and the screenshots --------------------------------------------
    const desktop = await browser.newContext({ viewport: { width: 1440, height: 900 }, acceptDownloads: true });
    const page = await desktop.newPage();
    current = page;
    page.on("pageerror", (e) => step(`page error: ${e.message}`));
    await login(page, "desktop");
    // The Server-Sent Events stream is connected (the sidebar says "Live").
    await page.locator(".live.live-live").waitFor({ timeout });
    step("live updates connected (SSE)");
    await topologyShowsEveryNode(page);
    await shot(page, "desktop-overview");
    await page.emulateMedia({ colorScheme: "dark" });
    await shot(page, "desktop-overview-dark");
    await page.emulateMedia({ colorScheme: "light" });
    await go(page, "nodes", "desktop");
    // The heatmap fills in once the beacons have published their hardware profiles.
    await page.locator('.heatmap td:not(.nodata)').first().waitFor({ timeout })
      .then(() => step("heatmap shows scores and load"))
      .catch(() => step("heatmap: no hardware profile published yet"));
    await shot(page, "desktop-nodes");
    await go(page, "files", "desktop");
    let stored = null;
    if (withFiles) {
      stored = await files(page);
      await shot(page, "desktop-files");
    } else {
      await page.waitForTimeout(1000);
      await shot(page, "desktop-files");
      step("file browser not exercised (HYPHAE_FILES != 1)");
    }
    for (const name of ["storage", "events"]) {
      await go(page, name, "desktop");
      await shot(page, `desktop-${name}`);
    }
    await go(page, "vms", "desktop");
    if (vmName) await vms(page);
    else step("VMs page: no VM given (HYPHAE_VM unset)");
    await shot(page, "desktop-vms");
    await go(page, "jobs", "desktop");
    if (jobId) await jobs(page);
    await shot(page, "desktop-jobs");
    await go(page, "names", "desktop");
    if (nameTarget) await names(page);
    await shot(page, "desktop-names");
    await go(page, "admission", "desktop");
    await page.click('form:has(input[type="number"]) button[type="submit"]');
    const token = (await page.locator('[data-testid="token"]').textContent({ timeout })) ?? "";
    if (token.trim().length < 16) throw new Error(`no join token shown (got ${JSON.stringify(token)})`);
    step("created a join token");
    if (pendingNode) {
      const item = await admit(page);
      await shot(page, "desktop-admission");
      await item.locator("button").click();
      await item.waitFor({ state: "detached", timeout });
      step(`admitted ${pendingNode} from the UI`);
      await go(page, "overview", "desktop");
      await page.locator(`[data-testid="topology-node"][data-node-id="${pendingNode}"].status-up`).waitFor({ state: "attached", timeout });
      step("the admitted node shows up on the topology");
      await shot(page, "desktop-overview-after-admit");
    } else {
      await shot(page, "desktop-admission");
    }
    await desktop.close();

    // --- phone: the layout collapses to a menu; a picture of each page ------------------------
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    const p = await phone.newPage();
    current = p;
    await login(p, "phone");
    if (!(await p.locator('[data-testid="menu"]').isVisible())) throw new Error("no menu button on a phone-sized screen");
    if (await p.locator('[data-testid="nav-nodes"]').isVisible()) throw new Error("the navigation is not collapsed on a phone-sized screen");
    await topologyShowsEveryNode(p);
    await shot(p, "phone-overview");
    await p.emulateMedia({ colorScheme: "dark" });
    await shot(p, "phone-overview-dark");
    await p.emulateMedia({ colorScheme: "light" });
    await p.click('[data-testid="menu"]');
    await p.locator('[data-testid="nav-nodes"]').waitFor({ state: "visible", timeout });
    await shot(p, "phone-menu");
    await p.click('[data-testid="menu"]');
    for (const name of pages.slice(1)) {
      await go(p, name, "phone");
      await shot(p, `phone-${name}`);
    }
    if (stored) {
      // Delete the file from the phone layout.
      await go(p, "files", "phone");
      const row = p.locator(`[data-testid="file-row"][data-path="${stored.name}"]`);
      p.once("dialog", (d) => d.accept());
      await row.locator("button.danger").click();
      await row.waitFor({ state: "detached", timeout });
      step("deleted the file (phone layout)");
    }
    await phone.close();
    step("ok");
  } catch (e) {
    if (current) {
      const file = path.join(artifacts, "failure.png");
      await current.screenshot({ path: file, fullPage: true }).catch(() => {});
      step(`failure screenshot ${file}`);
    }
    throw e;
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(`browser: FAILED: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
