// Drives chestcam's explanation viewer in headless Chromium (Playwright's
// playwright-core, with Debian's Chromium): load the page, click labels,
// move the opacity slider, switch method and stage, click a thumbnail, use
// the keyboard; after each step the canvas must equal the Rust rendering of
// that state (tests/viewer.rs writes it to expected.json) byte for byte.
// Also: no console error, no request leaves the file, every control has a
// label, a screenshot in DIR/viewer.png.
//
// Usage: node tests/browser/viewer_test.mjs DIR [NOTEBOOK.ipynb]
//   DIR holds viewer.html and expected.json; NOTEBOOK (executed) must carry
//   a viewer in a text/html output, which is loaded and checked to draw.
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const require = createRequire(process.env.CHESTCAM_NODE_MODULES + "/");
const { chromium } = require("playwright-core");

const [dir, notebook] = process.argv.slice(2);
const spec = JSON.parse(fs.readFileSync(path.join(dir, "expected.json"), "utf8"));
const failures = [];
const check = (ok, what) => {
  console.log((ok ? "ok   " : "FAIL ") + what);
  if (!ok) failures.push(what);
};

const browser = await chromium.launch({
  executablePath: process.env.CHESTCAM_CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

async function open(file) {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const errors = [], outside = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("request", (r) => {
    const u = r.url();
    if (!u.startsWith("data:") && u !== pathToFileURL(file).href) outside.push(u);
  });
  await page.goto(pathToFileURL(file).href);
  return { page, errors, outside };
}

const key = (s) => [s.image, s.view, s.label, s.opacity].join(",");
async function waitFor(page, k) {
  await page.waitForFunction((k) => document.querySelector(".ccv").dataset.rendered === k, k,
    { timeout: 10000 });
}
// The canvas compared with the expected RGB inside the page: the count of
// differing bytes, and a hash of what is shown.
async function compare(page, rgb) {
  return page.evaluate((rgb) => {
    const c = document.querySelector(".ccv-canvas");
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    const want = Uint8Array.from(atob(rgb), (ch) => ch.charCodeAt(0));
    let bad = 0, h = 0;
    for (let i = 0, j = 0; i < d.length; i += 4, j += 3) {
      for (let k = 0; k < 3; k++) {
        if (d[i + k] !== want[j + k]) bad++;
        h = (h * 31 + d[i + k]) >>> 0;
      }
    }
    return { bad, hash: h, size: c.width };
  }, rgb);
}

const file = path.resolve(dir, "viewer.html");
const { page, errors, outside } = await open(file);
const root = page.locator(".ccv");
await waitFor(page, key(spec.states[0]));
let prev = null, cur = { image: 0, view: 0, label: spec.states[0].label, opacity: 50 };
for (const s of spec.states) {
  // One control per difference, as a person would.
  if (s.image !== cur.image) await page.click(`.ccv-thumb[data-image="${s.image}"]`);
  const views = await page.evaluate(() => JSON.parse(document.querySelector(".ccv-data").textContent).views);
  if (views[s.view].method !== views[cur.view].method) await page.selectOption(".ccv-method", s.method);
  if (views[s.view].stage !== views[cur.view].stage) await page.selectOption(".ccv-stage", s.stage);
  if (s.label !== cur.label) await page.click(`.ccv-label[data-label="${s.label}"]`);
  if (s.opacity !== cur.opacity) await page.fill(".ccv-opacity", String(s.opacity));
  await waitFor(page, key(s));
  const r = await compare(page, s.rgb);
  check(r.size === spec.tile && r.bad === 0,
    `${s.what}: canvas equals the Rust rendering (${r.bad} bytes differ)`);
  if (prev !== null) check(r.hash !== prev, `${s.what}: the picture changed`);
  prev = r.hash;
  const warn = await page.locator(".ccv-warn").isVisible();
  check(warn === s.flat, `${s.what}: flat-map warning ${s.flat ? "shown" : "hidden"}`);
  const trust = await page.locator(".ccv-trust").textContent();
  check(/deletion AUC \d\.\d{3} against RandomCAM's \d\.\d{3}/.test(trust), `${s.what}: trust line "${trust.slice(0, 60)}..."`);
  const pressed = await page.locator('.ccv-label[aria-pressed="true"]').getAttribute("data-label");
  check(+pressed === s.label, `${s.what}: the label shown is marked pressed`);
  cur = s;
}
const shot = path.join(dir, "viewer.png");
await page.screenshot({ path: shot, fullPage: true });

// Labels sorted by probability, written as numbers.
const listed = await page.locator(".ccv-label").evaluateAll((bs) => bs.map((b) => +b.dataset.label));
check(JSON.stringify(listed) === JSON.stringify(spec.order[cur.image]), "labels listed by falling probability");
const ptext = await page.locator(".ccv-label .ccv-p").first().textContent();
check(/^p = \d\.\d\d$/.test(ptext), `probability written as a number ("${ptext}")`);

// Keyboard: from a label, down moves to the next label; right to the next X-ray.
const o = spec.order[cur.image];
await page.focus(`.ccv-label[data-label="${cur.label}"]`);
await page.keyboard.press("ArrowDown");
const next = o[o.indexOf(cur.label) + 1];
await waitFor(page, [cur.image, cur.view, next, cur.opacity].join(","));
check(await page.evaluate(() => document.activeElement.dataset.label) === String(next), "down arrow: next label, focused");
await page.keyboard.press("ArrowRight");
await waitFor(page, [cur.image + 1, cur.view, next, cur.opacity].join(","));
check(true, "right arrow: next X-ray");
await page.keyboard.press("ArrowLeft");
await waitFor(page, [cur.image, cur.view, next, cur.opacity].join(","));
check(true, "left arrow: previous X-ray");
// Tab reaches the controls (no mouse needed).
let reached = new Set();
await page.focus(".ccv-thumb");
for (let i = 0; i < 30; i++) {
  await page.keyboard.press("Tab");
  reached.add(await page.evaluate(() => document.activeElement.className));
}
check(["ccv-method", "ccv-stage", "ccv-opacity", "ccv-label"].every((c) => reached.has(c)), "Tab reaches method, stage, slider and labels");

// Every control labelled.
const unlabelled = await page.evaluate(() => {
  const r = document.querySelector(".ccv"), bad = [];
  r.querySelectorAll("select, input").forEach((e) => { if (!r.querySelector(`label[for="${e.id}"]`)) bad.push(e.className); });
  r.querySelectorAll("button").forEach((b) => { if (!(b.getAttribute("aria-label") || b.textContent.trim())) bad.push(b.className); });
  return bad;
});
check(unlabelled.length === 0, `every control labelled (${unlabelled.join(" ") || "none missing"})`);
check(errors.length === 0, `no console errors (${errors.join(" | ")})`);
check(outside.length === 0, `no request leaves the file (${outside.join(" ")})`);
console.log(`screenshot: ${shot}`);

// The notebook's inline viewer draws too.
if (notebook) {
  const nb = JSON.parse(fs.readFileSync(notebook, "utf8"));
  const frags = nb.cells.flatMap((c) => c.outputs || []).map((o) => (o.data || {})["text/html"])
    .filter(Boolean).map((h) => (Array.isArray(h) ? h.join("") : h)).filter((h) => h.includes('class="ccv"'));
  check(frags.length > 0, `${path.basename(notebook)} shows a viewer inline`);
  if (frags.length) {
    const f = path.resolve(dir, "notebook_viewer.html");
    fs.writeFileSync(f, `<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>${frags[0]}</body></html>`);
    const nbp = await open(f);
    await nbp.page.waitForFunction(() => (document.querySelector(".ccv") || {}).dataset?.rendered, null, { timeout: 10000 });
    const lit = await nbp.page.evaluate(() => {
      const c = document.querySelector(".ccv-canvas");
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) n += d[i] + d[i + 1] + d[i + 2] > 0;
      return n / (d.length / 4);
    });
    check(lit > 0.5, `the notebook's viewer draws (${(100 * lit).toFixed(0)}% of pixels lit)`);
    check(nbp.errors.length === 0 && nbp.outside.length === 0, `the notebook's viewer: no errors, nothing fetched (${nbp.errors.concat(nbp.outside).join(" | ")})`);
    await nbp.page.screenshot({ path: path.join(dir, "notebook_viewer.png"), fullPage: true });
  }
}
await browser.close();
if (failures.length) {
  console.log(`viewer browser test: ${failures.length} failed`);
  process.exit(1);
}
console.log("viewer browser test: all passed");
