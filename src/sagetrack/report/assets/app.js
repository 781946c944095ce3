/* sagetrack report: data loading, routing, formatting and DOM helpers for the views.
 *
 * Every piece of record text reaches the page through textContent (st.el), never as HTML.
 * Data files are scripts calling sagetrack.data(name, value), loaded with <script> so that
 * the report works from file:// as well as from a web server or presigned S3 URLs. */
"use strict";
(function () {
  const registry = {};
  const st = (window.sagetrack = { views: {}, generation: 0 });

  /* -- data ------------------------------------------------------------------------------ */
  st.data = function (name, value) {
    registry[name] = value;
  };

  st.url = function (path) {
    const signed = window.SAGETRACK_URLS;
    if (signed) return signed[path] || null;
    return st.generation ? path + "?g=" + st.generation : path;
  };

  /* Load a data file once (again after st.refresh); resolves with its value. */
  st.load = function (path, name) {
    if (name in registry) return Promise.resolve(registry[name]);
    return new Promise(function (resolve, reject) {
      const src = st.url(path);
      if (!src) {
        reject(new Error("This report has no file " + path + "."));
        return;
      }
      const script = document.createElement("script");
      script.src = src;
      script.onload = function () {
        script.remove();
        if (name in registry) resolve(registry[name]);
        else reject(new Error(path + " holds no report data."));
      };
      script.onerror = function () {
        script.remove();
        reject(new Error("Cannot load " + path + " (not in this report, or unreadable)."));
      };
      document.head.appendChild(script);
    });
  };

  const EXPERIMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
  const RUN_ID = /^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$/;

  /* "experiment/run-id" when valid (the names the store allows), else null. */
  st.runKey = function (text) {
    const parts = String(text || "").split("/");
    if (parts.length !== 2 || !EXPERIMENT.test(parts[0]) || parts[0].includes("..")) return null;
    return RUN_ID.test(parts[1]) ? parts[0] + "/" + parts[1] : null;
  };

  st.loadRun = function (key) {
    return st.load("data/run/" + key + ".js", "run:" + key);
  };

  /* -- routing: #runs?..., #run/<experiment>/<id>, #compare?runs=... ---------------------- */
  st.route = function () {
    const raw = location.hash.slice(1) || "runs";
    const cut = raw.indexOf("?");
    const path = decodeURIComponent(cut < 0 ? raw : raw.slice(0, cut));
    const params = new URLSearchParams(cut < 0 ? "" : raw.slice(cut + 1));
    const slash = path.indexOf("/");
    return {
      view: slash < 0 ? path : path.slice(0, slash),
      arg: slash < 0 ? "" : path.slice(slash + 1),
      params: params,
    };
  };

  st.link = function (view, arg, params) {
    const query = params ? params.toString() : "";
    return "#" + view + (arg ? "/" + arg : "") + (query ? "?" + query : "");
  };

  /* Keep the view's state in the URL without re-rendering (a shareable link). */
  st.setParams = function (params) {
    const r = st.route();
    history.replaceState(null, "", st.link(r.view, r.arg, params));
  };

  /* -- DOM --------------------------------------------------------------------------------- */
  st.el = function (tag, attrs) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "href" && !String(value).startsWith("#")) throw new Error("internal links only");
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key in node && typeof node[key] !== "function" && key !== "list") node[key] = value;
      else node.setAttribute(key, value);
    }
    for (let i = 2; i < arguments.length; i++) st.add(node, arguments[i]);
    return node;
  };

  /* Append children (nodes, text, arrays of them; null and false are skipped). */
  st.add = function (node) {
    for (let i = 1; i < arguments.length; i++) {
      const child = arguments[i];
      if (child === null || child === undefined || child === false) continue;
      if (Array.isArray(child)) child.forEach(function (c) { st.add(node, c); });
      else node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  };

  st.section = function (title, id) {
    return st.el("section", { class: "card", id: id }, st.el("h2", null, title));
  };

  /* A two-column table of [label, value] pairs; values go through st.value. */
  st.kv = function (items) {
    const rows = items.filter(function (item) { return item && item[1] !== undefined; });
    return st.el("table", { class: "kv" }, st.el("tbody", null, rows.map(function (item) {
      return st.el("tr", null, st.el("th", null, item[0]), st.el("td", null, st.value(item[1])));
    })));
  };

  /* A plain table: headers and rows of cells (nodes or values). */
  st.table = function (headers, rows, cls) {
    return st.el("table", { class: cls || "plain" },
      st.el("thead", null, st.el("tr", null, headers.map(function (h) { return st.el("th", null, h); }))),
      st.el("tbody", null, rows.map(function (row) {
        return st.el("tr", null, row.map(function (c) {
          return st.el("td", null, c instanceof Node ? c : st.value(c));
        }));
      })));
  };

  st.code = function (text) {
    return st.el("code", { class: "cmd" }, text);
  };

  /* -- formatting -------------------------------------------------------------------------- */
  st.fmt = function (value) {
    if (value === null || value === undefined) return "-";
    if (typeof value === "boolean") return value ? "yes" : "no";
    if (typeof value === "number") {
      if (Number.isNaN(value)) return "nan";
      if (!Number.isFinite(value)) return value > 0 ? "inf" : "-inf";
      if (Number.isInteger(value) && Math.abs(value) < 1e15) return String(value);
      return String(Number(value.toPrecision(4)));
    }
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  };

  /* A value as a node: objects as indented JSON, the rest as text. */
  st.value = function (value) {
    if (value instanceof Node) return value;
    if (value !== null && typeof value === "object") {
      if (Array.isArray(value) && value.every(function (v) { return typeof v !== "object"; }))
        return document.createTextNode(value.length ? value.map(st.fmt).join(", ") : "-");
      return st.el("pre", { class: "json" }, JSON.stringify(value, null, 2));
    }
    return document.createTextNode(st.fmt(value));
  };

  st.time = function (iso) {
    if (!iso) return "-";
    return String(iso).replace("T", " ").replace(/:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/, "") + " UTC";
  };

  st.duration = function (seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "-";
    const s = Math.round(seconds);
    const pad = function (n) { return String(n).padStart(2, "0"); };
    if (s >= 3600) return Math.floor(s / 3600) + "h" + pad(Math.floor((s % 3600) / 60)) + "m";
    if (s >= 60) return Math.floor(s / 60) + "m" + pad(s % 60) + "s";
    return s + "s";
  };

  /* Seconds since an ISO time (for a run that is still going). */
  st.since = function (iso) {
    const t = Date.parse(iso);
    return Number.isNaN(t) ? null : Math.max((Date.now() - t) / 1000, 0);
  };

  st.bytes = function (n) {
    if (typeof n !== "number" || !Number.isFinite(n) || n < 0) return "-";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return i ? n.toFixed(1) + " " + units[i] : n + " B";
  };

  st.ACTIVE = ["running", "launched"];

  st.status = function (status, problems) {
    return st.el("span", { class: "status status-" + String(status).replace(/[^a-z]/g, ""),
      title: problems ? "records unreadable or partial" : null },
      String(status) + (problems ? " !" : ""));
  };

  /* -- the page ---------------------------------------------------------------------------- */
  let meta = null;
  let timer = null;
  let rendering = 0;

  function header() {
    const nav = document.getElementById("nav");
    const info = document.getElementById("meta");
    nav.textContent = "";
    info.textContent = "";
    st.add(nav, st.el("a", { href: "#runs" }, "Runs"));
    if (!meta) return;
    const live = meta.watch ? " · live, every " + meta.watch + " s" : "";
    st.add(info, meta.store + " · " + meta.runs + " runs" +
      (meta.active ? " (" + meta.active + " active)" : "") + " · generated " + st.time(meta.generated) + live);
  }

  st.render = function () {
    const main = document.getElementById("main");
    const route = st.route();
    const view = st.views[route.view] || st.views.runs;
    document.body.removeAttribute("data-ready");
    const mine = ++rendering;
    st.destroyCharts();
    main.textContent = "";
    header();
    /* Each drawing has its own root: one overtaken (a hash change or a live reload while
     * its data loads) finishes in a detached root. Resolves with whether it was drawn. */
    const root = main.appendChild(st.el("div", { class: "view" }));
    return Promise.resolve(view(root, route))
      .then(function () {
        if (mine !== rendering) return false;
        document.body.dataset.ready = route.view in st.views ? route.view : "runs";
        return true;
      })
      .catch(function (err) {
        if (mine !== rendering) return false;
        root.textContent = "";
        st.add(root, st.el("p", { class: "error" }, String(err && err.message ? err.message : err)));
        document.body.dataset.ready = "error";
        return false;
      });
  };

  /* In a live report (sagetrack report --watch), reload the data when it was regenerated.
   * meta.revision names the generation's content (meta.js is written after the data it
   * names); a revision counts as shown only once drawn, so a failed draw is tried again. */
  let shown = null;
  let polling = false;

  function poll() {
    if (polling) return; // the previous poll is still loading (a slow disk or link)
    polling = true;
    delete registry.meta;
    st.generation++;
    st.load("data/meta.js", "meta").then(function (m) {
      if (m.revision === shown) return;
      meta = st.meta = m;
      for (const name of Object.keys(registry)) if (name !== "meta") delete registry[name];
      return st.render().then(function (drawn) { if (drawn) shown = m.revision; });
    }).catch(function () { /* the file is being replaced: try again next time */ })
      .then(function () { polling = false; });
  }

  function start() {
    st.load("data/meta.js", "meta").then(function (m) {
      meta = st.meta = m;
      if (meta.watch && !timer) timer = setInterval(poll, Math.max(meta.watch, 2) * 1000);
    }).catch(function () { meta = null; }).then(st.render).then(function (drawn) {
      if (drawn && meta) shown = meta.revision;
    });
  }

  window.addEventListener("hashchange", st.render);
  window.addEventListener("DOMContentLoaded", start);
})();
