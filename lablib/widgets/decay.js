// DecayExplorer: drag the decay a of S_t = a S_{t-1} + k_t v_t^T and see the decay mask a^(t-s)
// and the state's norm ||S_t|| over time. Everything is precomputed in Python; this file only draws.
// Plain DOM + SVG; SVG, s(), fmt() and rebuiltOnData() come from common.js, put in front of this file.
function h(tag, style, text) {
  const e = document.createElement(tag);
  if (style) e.setAttribute("style", style);
  if (text !== undefined) e.textContent = text;
  return e;
}

// Sequential white -> dark blue for a mask entry in [0, 1].
function blue(x) {
  const a = Math.max(0, Math.min(1, x));
  const m = (c) => Math.round(255 + (c - 255) * a);
  return `rgb(${m(8)},${m(48)},${m(107)})`;
}

const PANEL = "border:1px solid #ccc;border-radius:4px;padding:8px;background:#fff";
const CAPTION = "font-size:12px;color:#555;margin-top:6px";

function build(model, el) {
  const d = model.get("data");
  el.replaceChildren();
  const root = h("div", "font-family:system-ui,sans-serif;font-size:13px;color:#333;padding:8px 4px");
  root.className = "ll-decay-widget";
  el.appendChild(root);
  if (!d || !d.T) {
    root.appendChild(h("div", CAPTION, "No data: build the widget with DecayExplorer.from_kv(k, v)."));
    return () => {};
  }
  const { T, decays, half_lives, mask, norms, norm_max } = d;
  root.appendChild(h("div", "font-weight:600;margin-bottom:6px", model.get("title")));

  const controls = h("div", "display:flex;align-items:center;gap:10px;margin-bottom:10px;flex-wrap:wrap");
  const aSlider = h("input", "width:200px");
  aSlider.className = "ll-decay";
  Object.assign(aSlider, { type: "range", min: 0, max: decays.length - 1, step: 1, value: model.get("index") });
  aSlider.setAttribute("aria-label", "decay a");
  const aLabel = h("span", "font-variant-numeric:tabular-nums;min-width:13em");
  const tSlider = h("input", "width:200px");
  tSlider.className = "ll-t";
  Object.assign(tSlider, { type: "range", min: 0, max: T - 1, step: 1, value: model.get("step") });
  tSlider.setAttribute("aria-label", "time step t");
  const tLabel = h("span", "font-variant-numeric:tabular-nums;min-width:6em");
  [h("span", "", "decay"), aSlider, aLabel, h("span", "", "step"), tSlider, tLabel].forEach((c) => controls.appendChild(c));
  root.appendChild(controls);

  const panels = h("div", "display:flex;gap:12px;flex-wrap:wrap;align-items:flex-start");
  root.appendChild(panels);

  // (a) the T x T decay mask, row t outlined.
  const cell = Math.max(4, Math.min(14, Math.floor(280 / T)));
  const heat = s("svg", { width: T * cell + 2, height: T * cell + 2, class: "ll-mask" });
  const rects = [];
  for (let i = 0; i < T; i++) {
    for (let j = 0; j < T; j++) {
      const r = s("rect", { x: j * cell + 1, y: i * cell + 1, width: cell, height: cell, stroke: "#eee", "stroke-width": 0.3 });
      const title = s("title");
      r.appendChild(title);
      heat.appendChild(r);
      rects.push({ r, title, i, j });
    }
  }
  const rowBox = s("rect", { x: 1, width: T * cell, height: cell, fill: "none", stroke: "#d62728", "stroke-width": 1.5 });
  heat.appendChild(rowBox);
  const maskPanel = h("div", PANEL);
  maskPanel.className = "ll-panel ll-mask-panel";
  maskPanel.appendChild(heat);
  maskPanel.appendChild(h("div", CAPTION, "decay mask: row t, column s holds a^(t\u2212s) (s \u2264 t); white = 0, blue = 1"));
  panels.appendChild(maskPanel);

  // (b) ||S_t|| over t, one fixed y axis for every a.
  const W = 300, H = 200, L = 40, B = 24;
  const x = (t) => L + (T > 1 ? (t / (T - 1)) * (W - L - 8) : 0);
  const y = (n) => H - B - (n / norm_max) * (H - B - 8);
  const plot = s("svg", { width: W, height: H, class: "ll-norm" });
  plot.appendChild(s("line", { x1: L, y1: H - B, x2: W - 8, y2: H - B, stroke: "#999" }));
  plot.appendChild(s("line", { x1: L, y1: 8, x2: L, y2: H - B, stroke: "#999" }));
  const yTop = s("text", { x: L - 4, y: 12, "text-anchor": "end", "font-size": 10, fill: "#666" });
  yTop.textContent = fmt(norm_max);
  const yZero = s("text", { x: L - 4, y: H - B, "text-anchor": "end", "font-size": 10, fill: "#666" });
  yZero.textContent = "0";
  const xLab = s("text", { x: (L + W) / 2, y: H - 6, "text-anchor": "middle", "font-size": 10, fill: "#666" });
  xLab.textContent = `t (0..${T - 1})`;
  [yTop, yZero, xLab].forEach((e) => plot.appendChild(e));
  const ref = s("polyline", { fill: "none", stroke: "#bbb", "stroke-dasharray": "3,3", "stroke-width": 1.5 });
  const line = s("polyline", { fill: "none", stroke: "#1f77b4", "stroke-width": 2 });
  const dot = s("circle", { r: 4, fill: "#d62728" });
  [ref, line, dot].forEach((e) => plot.appendChild(e));
  ref.setAttribute("points", norms[0].map((n, t) => `${x(t)},${y(n)}`).join(" "));
  const normValue = h("div", "font-size:11px;color:#444;margin-top:4px;font-variant-numeric:tabular-nums");
  normValue.className = "ll-norm-value";
  const normPanel = h("div", PANEL);
  normPanel.className = "ll-panel ll-norm-panel";
  normPanel.appendChild(plot);
  normPanel.appendChild(normValue);
  normPanel.appendChild(h("div", CAPTION, `state norm \u2016S\u209C\u2016 (dashed: a = ${decays[0]})`));
  panels.appendChild(normPanel);

  function show(index, t) {
    index = Math.max(0, Math.min(decays.length - 1, index | 0));
    t = Math.max(0, Math.min(T - 1, t | 0));
    aSlider.value = index;
    tSlider.value = t;
    const a = decays[index];
    const hl = half_lives[index];
    aLabel.textContent = `a = ${a}` + (hl === null ? "  (no decay: half-life \u221E)" : `  (half-life ${hl} steps)`);
    tLabel.textContent = `t = ${t}`;
    const m = mask[index];
    for (const { r, title, i, j } of rects) {
      r.setAttribute("fill", blue(m[i][j]));
      r.setAttribute("data-value", String(m[i][j]));
      title.textContent = `a^(${i}\u2212${j}) = ${j <= i ? fmt(m[i][j]) : "0 (future)"}`;
    }
    rowBox.setAttribute("y", t * cell + 1);
    line.setAttribute("points", norms[index].map((n, tt) => `${x(tt)},${y(n)}`).join(" "));
    dot.setAttribute("cx", x(t));
    dot.setAttribute("cy", y(norms[index][t]));
    normValue.textContent = `\u2016S\u209C\u2016 at t = ${t}: ${fmt(norms[index][t])}`;
  }
  function sync(name, value) {
    if (model.get(name) !== value) {
      model.set(name, value);
      model.save_changes();
    }
  }
  aSlider.addEventListener("input", () => {
    show(Number(aSlider.value), Number(tSlider.value));
    sync("index", Number(aSlider.value));
  });
  tSlider.addEventListener("input", () => {
    show(Number(aSlider.value), Number(tSlider.value));
    sync("step", Number(tSlider.value));
  });
  const onChange = () => show(model.get("index"), model.get("step"));
  const onTitle = () => (root.firstChild.textContent = model.get("title"));
  model.on("change:index", onChange);
  model.on("change:step", onChange);
  model.on("change:title", onTitle);
  onChange();
  return () => {
    model.off("change:index", onChange);
    model.off("change:step", onChange);
    model.off("change:title", onTitle);
  };
}

export default rebuiltOnData(build);
