"""The page of ``pixbox serve``: HTML, script and style, embedded as strings (no files are served).

The script mirrors :func:`pixbox.serve.inference.postprocess`: the confidence and IoU sliders
filter and re-suppress the detection candidates in the browser, without another request.
"""

from __future__ import annotations

__all__ = ["APP_CSS", "APP_JS", "INDEX_HTML"]

INDEX_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pixbox serve</title>
<link rel="stylesheet" href="/app.css">
<script src="/app.js" defer></script>
</head>
<body data-state="loading">
<header><h1>pixbox</h1><span id="status" role="status">loading models...</span></header>
<main>
  <section id="controls">
    <label>Model <select id="model"></select></label>
    <label id="drop" tabindex="0">
      <input id="file" type="file" accept="image/*">
      <span>Drop an image here, or click to choose one</span>
    </label>
    <div class="detect-only">
      <label>Confidence &gt; <output id="conf-value"></output>
        <input id="conf" type="range" min="0.05" max="1" step="0.01"></label>
      <label>NMS IoU &gt; <output id="iou-value"></output>
        <input id="iou" type="range" min="0" max="1" step="0.01"></label>
    </div>
    <div class="segment-only">
      <label>Overlay opacity <output id="alpha-value"></output>
        <input id="alpha" type="range" min="0" max="1" step="0.05" value="0.5"></label>
    </div>
    <p id="count" data-count=""></p>
    <ol id="results"></ol>
  </section>
  <section id="view"><canvas id="canvas" width="640" height="400"></canvas></section>
</main>
</body>
</html>
"""

APP_CSS = """
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.4 system-ui, sans-serif; color: #1d1d1f; background: #f4f5f7; }
header { display: flex; align-items: baseline; gap: 1em; padding: 0.6em 1.2em; background: #1f2937; color: #fff; }
header h1 { margin: 0; font-size: 1.3em; }
#status { opacity: 0.85; }
main { display: flex; flex-wrap: wrap; gap: 1.2em; padding: 1.2em; }
#controls { flex: 0 0 300px; display: flex; flex-direction: column; gap: 0.8em; }
#controls label { display: flex; flex-direction: column; gap: 0.2em; }
#drop { border: 2px dashed #9ca3af; border-radius: 8px; padding: 1.4em 0.8em; text-align: center;
        background: #fff; cursor: pointer; }
#drop.over { border-color: #2563eb; background: #eff6ff; }
#drop input { display: none; }
#view { flex: 1 1 480px; }
canvas { max-width: 100%; background: #fff; border-radius: 6px; box-shadow: 0 1px 4px rgba(0,0,0,.15); }
#results { margin: 0; padding-left: 1.4em; max-height: 22em; overflow: auto; }
#results li { margin: 0.15em 0; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.4em; border-radius: 2px; }
.bar { height: 6px; background: #2563eb; border-radius: 3px; }
body:not(.task-detect) .detect-only, body:not(.task-segment) .segment-only { display: none; }
#count { font-weight: 600; margin: 0; }
"""

APP_JS = r"""
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const state = { models: [], model: null, image: null, result: null, overlay: null };

  function setStatus(text, phase) {
    $("status").textContent = text;
    if (phase) document.body.dataset.state = phase;
  }

  function rgb(c) { return "rgb(" + c[0] + "," + c[1] + "," + c[2] + ")"; }

  function iou(a, b) {
    const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
    const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
    const inter = w * h;
    const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    return union > 0 ? inter / union : 0;
  }

  // The same steps as pixbox.serve.inference.postprocess: score > conf, per-class greedy NMS
  // (suppress IoU > iou with a kept, higher-scoring box of the class), top-k.
  function postprocess(cands, conf, iouThr, topk) {
    const order = cands.map((c, i) => i).filter((i) => cands[i].score > conf);
    order.sort((i, j) => (cands[j].score - cands[i].score) || (i - j));
    const kept = [];
    for (const i of order) {
      if (kept.length >= topk) break;
      const c = cands[i];
      if (!kept.some((k) => k.label === c.label && iou(k.box, c.box) > iouThr)) kept.push(c);
    }
    return kept;
  }

  // The drawing scale: fit the view; small images are enlarged up to 480 pixels on their long side.
  function fit(width, height) {
    const maxW = Math.max(320, Math.min(960, $("view").clientWidth || 960));
    const s = Math.min(maxW / width, 720 / height);
    return s > 1 ? Math.min(s, Math.max(1, 480 / Math.max(width, height))) : s;
  }

  function draw() {
    const canvas = $("canvas"), ctx = canvas.getContext("2d");
    const img = state.image;
    if (!img) return;
    const s = fit(img.naturalWidth, img.naturalHeight);
    canvas.width = Math.round(img.naturalWidth * s);
    canvas.height = Math.round(img.naturalHeight * s);
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    const r = state.result, m = state.model, list = $("results");
    list.replaceChildren();
    if (!r) return;
    let count = 0;
    if (r.task === "detect") {
      const conf = parseFloat($("conf").value), thr = parseFloat($("iou").value);
      $("conf-value").textContent = conf.toFixed(2);
      $("iou-value").textContent = thr.toFixed(2);
      const dets = postprocess(r.candidates, conf, thr, m.topk);
      const font = Math.max(12, Math.round(canvas.width / 45));
      ctx.font = font + "px system-ui, sans-serif";
      ctx.lineWidth = Math.max(2, Math.round(canvas.width / 300));
      for (const d of dets) {
        const color = rgb(m.colors[d.label % m.colors.length]);
        const [x1, y1, x2, y2] = d.box.map((v) => v * s);
        ctx.strokeStyle = color;
        ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
        const text = d.name + " " + d.score.toFixed(2);
        const tw = ctx.measureText(text).width + 6;
        const ty = y1 - font - 4 >= 0 ? y1 - font - 4 : y1;
        ctx.fillStyle = color;
        ctx.fillRect(x1, ty, tw, font + 4);
        ctx.fillStyle = "#fff";
        ctx.fillText(text, x1 + 3, ty + font);
        const li = document.createElement("li");
        li.className = "detection";
        li.textContent = text + "  [" + d.box.map((v) => Math.round(v)).join(", ") + "]";
        list.appendChild(li);
      }
      count = dets.length;
      $("count").textContent = count + (count === 1 ? " detection" : " detections") +
        (r.truncated ? " (candidates capped)" : "");
    } else if (r.task === "classify") {
      for (const t of r.topk) {
        const li = document.createElement("li");
        li.className = "class";
        li.textContent = t.name + " " + (100 * t.score).toFixed(1) + "%";
        const bar = document.createElement("div");
        bar.className = "bar";
        bar.style.width = (100 * t.score).toFixed(1) + "%";
        li.appendChild(bar);
        list.appendChild(li);
      }
      count = r.topk.length;
      const top = r.topk[0];
      if (top) {
        const font = Math.max(14, Math.round(canvas.width / 30));
        ctx.font = "bold " + font + "px system-ui, sans-serif";
        const text = top.name + " " + (100 * top.score).toFixed(1) + "%";
        ctx.fillStyle = "rgba(0,0,0,0.6)";
        ctx.fillRect(0, 0, ctx.measureText(text).width + 16, font + 12);
        ctx.fillStyle = "#fff";
        ctx.fillText(text, 8, font + 3);
      }
      $("count").textContent = "top " + count + " classes";
    } else if (r.task === "segment") {
      const alpha = parseFloat($("alpha").value);
      $("alpha-value").textContent = alpha.toFixed(2);
      if (state.overlay) {
        ctx.globalAlpha = alpha;
        ctx.drawImage(state.overlay, 0, 0, canvas.width, canvas.height);
        ctx.globalAlpha = 1;
      }
      for (const c of r.classes) {
        const li = document.createElement("li");
        li.className = "class";
        const sw = document.createElement("span");
        sw.className = "swatch";
        sw.style.background = rgb(m.colors[c.label % m.colors.length]);
        li.appendChild(sw);
        li.appendChild(document.createTextNode(c.name + " " + (100 * c.fraction).toFixed(1) + "%"));
        list.appendChild(li);
      }
      count = r.classes.length;
      $("count").textContent = count + (count === 1 ? " class" : " classes") + " present";
    }
    $("count").dataset.count = String(count);
  }

  function selectModel(name) {
    state.model = state.models.find((m) => m.name === name) || state.models[0];
    document.body.className = "task-" + state.model.task;
    if (state.model.task === "detect") {
      $("conf").min = String(state.model.conf_min);
      $("conf").value = String(state.model.conf);
      $("iou").value = String(state.model.iou);
    }
  }

  async function run(file) {
    if (!file) return;
    state.result = null;
    $("count").dataset.count = "";
    setStatus("running " + state.model.name + " on " + file.name + "...", "working");
    const url = URL.createObjectURL(file);
    const img = new Image();
    const loaded = new Promise((ok, bad) => { img.onload = ok; img.onerror = bad; });
    img.src = url;
    const form = new FormData();
    form.append("image", file);
    const query = new URLSearchParams({ model: state.model.name, candidates: "1", topk: "5" });
    if (state.model.task === "detect") {
      query.set("conf", $("conf").value);
      query.set("iou", $("iou").value);
    }
    try {
      const response = await fetch("/api/predict?" + query.toString(), { method: "POST", body: form });
      const body = await response.json();
      if (!response.ok) throw new Error(body.error || response.statusText);
      try { await loaded; } catch (e) { throw new Error("the browser cannot display this image"); }
      state.image = img;
      state.result = body;
      state.overlay = null;
      if (body.task === "segment") {
        const overlay = new Image();
        await new Promise((ok, bad) => { overlay.onload = ok; overlay.onerror = bad; overlay.src = body.mask; });
        state.overlay = overlay;
      }
      draw();
      setStatus(file.name + ": " + $("count").textContent, "done");
    } catch (e) {
      $("results").replaceChildren();
      $("count").textContent = "";
      setStatus("error: " + e.message, "error");
    }
  }

  async function init() {
    try {
      const response = await fetch("/api/models");
      state.models = (await response.json()).models;
    } catch (e) {
      setStatus("error: cannot reach the server (" + e.message + ")", "error");
      return;
    }
    const select = $("model");
    for (const m of state.models) {
      const opt = document.createElement("option");
      opt.value = m.name;
      opt.textContent = m.name + " (" + m.task + ")";
      select.appendChild(opt);
    }
    selectModel(state.models[0].name);
    select.addEventListener("change", () => { selectModel(select.value); state.result = null; draw(); });
    $("file").addEventListener("change", () => run($("file").files[0]));
    for (const id of ["conf", "iou", "alpha"]) $(id).addEventListener("input", draw);
    const drop = $("drop");
    drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("over");
      if (e.dataTransfer.files.length) run(e.dataTransfer.files[0]);
    });
    window.addEventListener("resize", draw);
    setStatus("ready: choose or drop an image", "ready");
  }

  init();
})();
"""
