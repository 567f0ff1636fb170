// chestcam's explanation viewer: plain JavaScript, no network, no library.
// The heatmap is drawn with the arithmetic of chestcam's overlay_tile in
// single precision (Math.fround after every operation), so the canvas equals
// the Rust rendering of the same stored map byte for byte.
function chestcamViewer(root) {
  "use strict";
  if (!root || root.dataset.ready) return;
  root.dataset.ready = "1";
  const D = JSON.parse(root.querySelector(".ccv-data").textContent);
  const f = Math.fround, T = D.tile, NL = D.labels.length;
  const st = { image: 0, view: 0, label: -1, opacity: D.opacity };
  const cache = new Map();

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  // A grey PNG (data URL) as its bytes, decoded once.
  function decode(url, s) {
    if (!cache.has(url)) {
      cache.set(url, new Promise((ok, fail) => {
        const im = new Image();
        im.onload = () => {
          const c = el("canvas", { width: s, height: s });
          const g = c.getContext("2d");
          g.drawImage(im, 0, 0);
          const d = g.getImageData(0, 0, s, s).data, out = new Uint8Array(s * s);
          for (let i = 0; i < s * s; i++) out[i] = d[4 * i];
          ok(out);
        };
        im.onerror = () => fail(new Error("cannot decode a stored picture"));
        im.src = url;
      }));
    }
    return cache.get(url);
  }
  // overlay_tile: bilinear map (half-pixel centres), nearest X-ray,
  // show_cam_on_image's blend divided by its maximum.
  function overlay(px, q, s, w) {
    const scale = f(s / T), big = new Float32Array(T * T), m = new Float32Array(s * s);
    for (let i = 0; i < s * s; i++) m[i] = f(q[i] / 255);
    const co = new Array(T);
    for (let o = 0; o < T; o++) {
      const x = Math.max(f(f(f(o + 0.5) * scale) - 0.5), 0);
      const i0 = Math.min(Math.floor(x), s - 1), i1 = Math.min(i0 + 1, s - 1);
      co[o] = [i0, i1, f(x - i0)];
    }
    for (let y = 0; y < T; y++) {
      const [y0, y1, fy] = co[y];
      for (let x = 0; x < T; x++) {
        const [x0, x1, fx] = co[x];
        const top = f(f(m[y0 * s + x0] * f(1 - fx)) + f(m[y0 * s + x1] * fx));
        const bot = f(f(m[y1 * s + x0] * f(1 - fx)) + f(m[y1 * s + x1] * fx));
        big[y * T + x] = Math.min(Math.max(f(f(top * f(1 - fy)) + f(bot * fy)), 0), 1);
      }
    }
    const cam = new Float32Array(3 * T * T), a = f(1 - w);
    let max = f(-3.4028234663852886e38);
    for (let y = 0; y < T; y++) {
      const sy = Math.min(Math.floor(y * s / T), s - 1);
      for (let x = 0; x < T; x++) {
        const g = f(px[sy * s + Math.min(Math.floor(x * s / T), s - 1)] / 255);
        const i = y * T + x, c = Math.trunc(f(255 * big[i]));
        for (let k = 0; k < 3; k++) {
          const v = f(f(a * f(D.colormap[3 * c + k] / 255)) + f(w * g));
          cam[3 * i + k] = v;
          if (v > max) max = v;
        }
      }
    }
    max = Math.max(max, f(1e-12));
    const out = new Uint8ClampedArray(4 * T * T);
    for (let i = 0; i < T * T; i++) {
      for (let k = 0; k < 3; k++) out[4 * i + k] = Math.trunc(f(255 * f(cam[3 * i + k] / max)));
      out[4 * i + 3] = 255;
    }
    return out;
  }
  function plain(px, s) {
    const out = new Uint8ClampedArray(4 * T * T);
    for (let y = 0; y < T; y++) {
      const sy = Math.min(Math.floor(y * s / T), s - 1);
      for (let x = 0; x < T; x++) {
        const v = px[sy * s + Math.min(Math.floor(x * s / T), s - 1)], i = 4 * (y * T + x);
        out[i] = out[i + 1] = out[i + 2] = v;
        out[i + 3] = 255;
      }
    }
    return out;
  }

  // Layout.
  root.appendChild(el("h2", { class: "ccv-title" }, D.title));
  const strip = el("div", { class: "ccv-strip", role: "group", "aria-label": "X-rays" });
  const main = el("div", { class: "ccv-main" });
  const fig = el("figure", { class: "ccv-fig" });
  const canvas = el("canvas", { width: T, height: T, class: "ccv-canvas", role: "img" });
  const caption = el("figcaption", { class: "ccv-caption", "aria-live": "polite" });
  fig.append(canvas, caption);
  const side = el("div", { class: "ccv-side" });
  const uniq = (k) => [...new Set(D.views.map((v) => v[k]))];
  function select(name, options) {
    const id = root.id + "-" + name, s = el("select", { id: id, class: "ccv-" + name });
    options.forEach((o) => s.appendChild(el("option", { value: o }, o)));
    const w = el("div", { class: "ccv-control" });
    w.append(el("label", { for: id }, name === "method" ? "Method" : "Stage"), s);
    side.appendChild(w);
    return s;
  }
  const methodSel = select("method", uniq("method")), stageSel = select("stage", uniq("stage"));
  const sid = root.id + "-opacity", sw = el("div", { class: "ccv-control" });
  const slider = el("input", { type: "range", id: sid, class: "ccv-opacity", min: 0, max: 100, step: 5, value: st.opacity });
  const shown = el("output", { for: sid, class: "ccv-opacity-value" }, st.opacity + " %");
  sw.append(el("label", { for: sid }, "Heatmap opacity"), slider, shown);
  side.appendChild(sw);
  const warn = el("p", { class: "ccv-warn", role: "status" });
  const trust = el("p", { class: "ccv-trust" });
  const list = el("ol", { class: "ccv-labels", "aria-label": "Findings, most probable first" });
  side.append(warn, trust, list);
  side.appendChild(el("p", { class: "ccv-help" },
    "Keys: up/down arrows move between findings, left/right arrows between X-rays. " +
    "Click a finding to see its heatmap."));
  main.append(fig, side);
  root.append(strip, main);

  D.images.forEach((im, i) => {
    const b = el("button", { type: "button", class: "ccv-thumb", "data-image": i,
      "aria-label": "X-ray " + im.name + ", " + (i + 1) + " of " + D.images.length });
    b.append(el("img", { src: im.xray, alt: "", width: 64, height: 64 }), el("span", {}, im.name));
    b.addEventListener("click", () => { st.image = i; update(); });
    strip.appendChild(b);
  });

  const order = () => {
    const p = D.images[st.image].probs;
    return [...Array(NL).keys()].sort((a, b) => p[b] - p[a] || a - b);
  };
  const fmt = (x) => x.toFixed(2);
  const truthText = (im, l) => !im.truth ? "" : im.truth[l] ? "present" : "absent";

  function labels() {
    const im = D.images[st.image], maps = im.maps[st.view] || [];
    list.textContent = "";
    for (const l of order()) {
      const m = maps[l], li = el("li");
      const b = el("button", { type: "button", class: "ccv-label", "data-label": l, "aria-pressed": l === st.label });
      b.append(el("span", { class: "ccv-name" }, D.labels[l]),
        el("span", { class: "ccv-p" }, "p = " + fmt(im.probs[l])));
      const bar = el("span", { class: "ccv-bar", "aria-hidden": "true" });
      bar.style.width = Math.round(100 * im.probs[l]) + "%";
      b.appendChild(bar);
      if (im.truth) b.appendChild(el("span", { class: "ccv-gt" + (im.truth[l] ? " ccv-yes" : "") }, "truth: " + truthText(im, l)));
      if (m && m.flat) b.appendChild(el("span", { class: "ccv-flat" }, "flat map"));
      if (!m) b.appendChild(el("span", { class: "ccv-flat" }, "no map"));
      b.addEventListener("click", () => { st.label = l; update(); });
      li.appendChild(b);
      list.appendChild(li);
    }
  }

  let token = 0;
  async function draw() {
    const t = ++token, im = D.images[st.image], m = (im.maps[st.view] || [])[st.label];
    const key = [st.image, st.view, st.label, st.opacity].join(",");
    const px = await decode(im.xray, im.size), q = m ? await decode(m.png, im.size) : null;
    if (t !== token) return;
    const rgba = q ? overlay(px, q, im.size, f((100 - st.opacity) / 100)) : plain(px, im.size);
    canvas.getContext("2d").putImageData(new ImageData(rgba, T, T), 0, 0);
    root.dataset.rendered = key;
  }

  function update() {
    const im = D.images[st.image];
    if (st.label < 0) st.label = order()[0];
    const v = D.views.findIndex((v) => v.method === methodSel.value && v.stage === stageSel.value);
    st.view = v;
    labels();
    strip.querySelectorAll(".ccv-thumb").forEach((b) => b.setAttribute("aria-pressed", +b.dataset.image === st.image));
    const l = st.label, m = v < 0 ? null : im.maps[v][l], view = v < 0 ? null : D.views[v];
    const gt = im.truth ? ", truth: " + truthText(im, l) : "";
    caption.textContent = im.name + " - " + D.labels[l] + ": p = " + fmt(im.probs[l]) + gt +
      (view ? " - " + view.method + " at " + view.stage : " - no map for this method and stage");
    canvas.setAttribute("aria-label", "Heatmap of " + D.labels[l] + " on X-ray " + im.name);
    warn.textContent = m && m.flat ? "Flat map: nothing in this X-ray raised the score of " + D.labels[l] +
      " under " + view.method + "; the map shows no location." : !m ? "No map was computed for this finding." : "";
    warn.hidden = !warn.textContent;
    const tr = m && m.trust;
    const f3 = (x) => x.toFixed(3);
    trust.textContent = tr ? "Trust: deletion AUC " + f3(tr.deletion_auc) + " against RandomCAM's " +
      f3(tr.random_cam_deletion_auc) + " on this X-ray and finding (lower is more faithful): " +
      (tr.deletion_auc < tr.random_cam_deletion_auc ? "beats" : "does not beat") + " the random baseline." : "";
    trust.hidden = !tr;
    draw().catch((e) => { warn.hidden = false; warn.textContent = String(e); });
  }

  methodSel.addEventListener("change", update);
  stageSel.addEventListener("change", update);
  slider.addEventListener("input", () => {
    st.opacity = +slider.value;
    shown.textContent = st.opacity + " %";
    draw();
  });
  root.addEventListener("keydown", (e) => {
    const t = e.target.tagName;
    if (t === "SELECT" || t === "INPUT") return;
    const inList = list.contains(document.activeElement), inStrip = strip.contains(document.activeElement);
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      const o = order(), k = o.indexOf(st.label) + (e.key === "ArrowDown" ? 1 : -1);
      st.label = o[Math.min(Math.max(k, 0), NL - 1)];
    } else if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
      const k = st.image + (e.key === "ArrowRight" ? 1 : -1);
      st.image = Math.min(Math.max(k, 0), D.images.length - 1);
    } else return;
    e.preventDefault();
    update();
    if (inList) list.querySelector('[aria-pressed="true"]').focus();
    if (inStrip) strip.querySelector('[aria-pressed="true"]').focus();
  });
  update();
}
