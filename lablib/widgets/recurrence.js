// RecurrenceStepper: step through S_t = S_{t-1} + phi(k_t) v_t^T and o_t = phi(q_t)^T S_t / (phi(q_t)^T z_t + eps).
// Plain DOM + SVG; SVG, s(), fmt() and rebuiltOnData() come from common.js, put in front of this file.
function h(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// Diverging blue-white-red, symmetric around 0; `scale` is fixed across all t.
function color(x, scale) {
  const a = Math.max(-1, Math.min(1, x / scale));
  const [r, g, b] = a < 0 ? [33, 102, 172] : [178, 24, 43];
  const m = (c) => Math.round(255 + (c - 255) * Math.abs(a));
  return `rgb(${m(r)},${m(g)},${m(b)})`;
}


// A rows x cols grid of <rect>s; update(matrix) recolours it in place.
function heatmap(rows, cols, cell, scale, label) {
  const svg = s("svg", { width: cols * cell + 1, height: rows * cell + 1, class: "ll-heat" });
  const rects = [];
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const r = s("rect", { x: j * cell + 0.5, y: i * cell + 0.5, width: cell, height: cell });
      const title = s("title");
      r.appendChild(title);
      svg.appendChild(r);
      rects.push({ r, title, i, j });
    }
  }
  function update(m) {
    for (const { r, title, i, j } of rects) {
      const x = m[i][j];
      r.setAttribute("fill", color(x, scale));
      r.setAttribute("data-value", String(x));
      title.textContent = `${label(i, j)} = ${fmt(x)}`;
    }
  }
  return { svg, update };
}

function panel(cls, caption, ...children) {
  const p = h("div", "ll-panel " + cls);
  const row = h("div", "ll-row");
  children.forEach((c) => row.appendChild(c));
  p.appendChild(row);
  p.appendChild(h("div", "ll-caption", caption));
  return p;
}

function labelled(text, node) {
  const box = h("div", "ll-labelled");
  box.appendChild(node);
  box.appendChild(h("div", "ll-sub", text));
  return box;
}

function build(model, el) {
  const d = model.get("data");
  el.replaceChildren();
  const root = h("div", "ll-recurrence");
  el.appendChild(root);
  if (!d || !d.T) {
    root.appendChild(h("div", "ll-caption", "No data: build the widget with RecurrenceStepper.from_qkv(q, k, v)."));
    return () => {};
  }
  const { T, d_k: F, d_v: V, scale } = d;
  const cell = Math.max(8, Math.min(24, Math.floor(220 / Math.max(F, V))));

  const title = h("div", "ll-title", model.get("title"));
  root.appendChild(title);

  const controls = h("div", "ll-controls");
  const play = h("button", "ll-play", "\u25B6 play");
  const slider = h("input", "ll-step");
  Object.assign(slider, { type: "range", min: 0, max: T - 1, step: 1, value: model.get("step") });
  slider.setAttribute("aria-label", "time step t");
  const tLabel = h("span", "ll-t");
  const den = h("span", "ll-den");
  [play, slider, tLabel, den].forEach((c) => controls.appendChild(c));
  root.appendChild(controls);

  // (a) the write phi(k_t) v_t^T, with phi(k_t) as a column and v_t as a row around it.
  const fk = heatmap(F, 1, cell, scale.phi, (i) => `\u03C6(k_t)[${i}]`);
  const vt = heatmap(1, V, cell, scale.v, (_, j) => `v_t[${j}]`);
  const up = heatmap(F, V, cell, scale.update, (i, j) => `\u03C6(k_t)[${i}] v_t[${j}]`);
  const outer = h("div", "ll-outer");
  outer.appendChild(h("div"));
  outer.appendChild(labelled("v\u209C", vt.svg));
  outer.appendChild(labelled("\u03C6(k\u209C)", fk.svg));
  outer.appendChild(up.svg);
  // (b) the state S_t, with the query phi(q_t) that reads it.
  const fq = heatmap(F, 1, cell, scale.phi, (i) => `\u03C6(q_t)[${i}]`);
  const st = heatmap(F, V, cell, scale.state, (i, j) => `S_t[${i},${j}]`);
  // (c) the output row o_t.
  const out = heatmap(1, V, cell, scale.output, (_, j) => `o_t[${j}]`);

  const outValues = h("div", "ll-values");
  const norm = d.normalize ? " / (\u03C6(q\u209C)\u1D40z\u209C + \u03B5)" : "";
  const panels = h("div", "ll-panels");
  panels.appendChild(panel("ll-update", "write: \u03C6(k\u209C) v\u209C\u1D40", outer));
  panels.appendChild(panel("ll-state", "state: S\u209C = S\u209C\u208B\u2081 + \u03C6(k\u209C) v\u209C\u1D40",
    labelled("\u03C6(q\u209C)", fq.svg), labelled(`S\u209C (${F} \u00D7 ${V})`, st.svg)));
  panels.appendChild(panel("ll-output", `output: o\u209C = \u03C6(q\u209C)\u1D40 S\u209C${norm}`,
    labelled(`o\u209C (1 \u00D7 ${V})`, out.svg)));
  panels.lastChild.insertBefore(outValues, panels.lastChild.lastChild); // above the caption
  root.appendChild(panels);
  root.appendChild(h("div", "ll-legend",
    `colours: blue < 0 < red, one fixed scale per panel (|S| \u2264 ${fmt(scale.state)}, |o| \u2264 ${fmt(scale.output)}); hover a cell for its value. feature map: ${d.feature_map}`));

  function show(t) {
    t = Math.max(0, Math.min(T - 1, t | 0));
    slider.value = t;
    tLabel.textContent = `t = ${t}  (of 0..${T - 1})`;
    den.textContent = d.normalize ? `\u03C6(q\u209C)\u1D40z\u209C = ${fmt(d.den[t])}` : "";
    fk.update(d.phi_k[t].map((x) => [x]));
    vt.update([d.v[t]]);
    up.update(d.update[t]);
    fq.update(d.phi_q[t].map((x) => [x]));
    st.update(d.state[t]);
    out.update([d.output[t]]);
    outValues.textContent = `o\u209C = [${d.output[t].map(fmt).join(", ")}]`;
  }
  function setStep(t) {
    show(t);
    if (model.get("step") !== t) {
      model.set("step", t);
      model.save_changes();
    }
  }

  let timer = null;
  function stop() {
    if (timer !== null) clearInterval(timer);
    timer = null;
    play.textContent = "\u25B6 play";
  }
  play.addEventListener("click", () => {
    if (timer !== null) return stop();
    if (Number(slider.value) >= T - 1) setStep(0);
    play.textContent = "\u275A\u275A pause";
    timer = setInterval(() => {
      const t = Number(slider.value) + 1;
      if (t > T - 1) return stop();
      setStep(t);
    }, 700);
  });
  slider.addEventListener("input", () => setStep(Number(slider.value)));

  const onStep = () => show(model.get("step"));
  const onTitle = () => (title.textContent = model.get("title"));
  model.on("change:step", onStep);
  model.on("change:title", onTitle);
  show(model.get("step"));
  return () => {
    stop();
    model.off("change:step", onStep);
    model.off("change:title", onTitle);
  };
}

export default rebuiltOnData(build);
