// Shared by every lablib widget: lablib.widgets._assets.widget_module() puts this file in front of
// each widget's own module, so the pieces below are defined once and every widget stays a single
// dependency-free ES module (it loads nothing and needs no network: it must run offline in JupyterLab
// and marimo).

// The SVG namespace, taken from a parsed <svg> so that no URL-like string appears in the source.
const SVG = (() => {
  const d = document.createElement("div");
  d.innerHTML = "<svg></svg>";
  return d.firstChild.namespaceURI;
})();

// An SVG element with attributes.
function s(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

const fmt = (x) => (Math.abs(x) >= 100 ? x.toFixed(1) : x.toFixed(3));

// The anywidget render hook for a widget drawn by build(model, el) -> cleanup: the whole view is
// rebuilt when the precomputed `data` trait is replaced, and torn down when the view goes away.
function rebuiltOnData(build) {
  return {
    render({ model, el }) {
      let cleanup = build(model, el);
      const onData = () => {
        cleanup();
        cleanup = build(model, el);
      };
      model.on("change:data", onData);
      return () => {
        cleanup();
        model.off("change:data", onData);
      };
    },
  };
}
