/* sagetrack report: charts drawn with uPlot.
 *
 * Drag to zoom (double-click resets), hover to read the values in the legend, click a
 * legend entry to hide or show its series. */
"use strict";
(function () {
  const st = window.sagetrack;
  const charts = [];
  st.COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf"];

  st.color = function (i) { return st.COLORS[i % st.COLORS.length]; };

  st.destroyCharts = function () {
    while (charts.length) charts.pop().destroy();
  };

  function width(container) {
    return Math.max(Math.min(container.clientWidth || 640, 960), 280);
  }

  function keep(chart, container, count) {
    chart.root.dataset.series = String(count);
    chart.root.sagetrackContainer = container;
    charts.push(chart);
    return chart;
  }

  /* Metric names in display order: loss first, then each metric before its val_ variant,
   * learning rates last. */
  st.metricOrder = function (names) {
    const rank = function (n) {
      const base = n.replace(/^val_/, "");
      return base === "loss" ? 0 : (/^(lr|learning_rate|duration_s)$/.test(base) ? 2 : 1);
    };
    return names.slice().sort(function (a, b) {
      const ba = a.replace(/^val_/, ""), bb = b.replace(/^val_/, "");
      return rank(a) - rank(b) || (ba < bb ? -1 : ba > bb ? 1 : 0) ||
        (a.startsWith("val_") ? 1 : 0) - (b.startsWith("val_") ? 1 : 0);
    });
  };

  /* A line chart: shared x values, series [{label, values, color, dash}]. */
  st.lineChart = function (container, title, xlabel, x, series) {
    const opts = {
      title: title,
      width: width(container),
      height: 260,
      scales: { x: { time: false } },
      axes: [{ label: xlabel }, {}],
      series: [{ label: xlabel }].concat(series.map(function (s) {
        return {
          label: s.label, stroke: s.color, width: 1.5, dash: s.dash, spanGaps: true,
          points: { show: x.length <= 60 },
          value: function (u, v) { return st.fmt(v); },
        };
      })),
    };
    const data = [x].concat(series.map(function (s) { return s.values; }));
    return keep(new uPlot(opts, data, container), container, series.length);
  };

  /* Curves of several runs on one x axis: runs [{label, color, x, values, dash}]. */
  st.overlay = function (container, title, xlabel, runs) {
    const joined = uPlot.join(runs.map(function (r) { return [r.x, r.values]; }));
    return st.lineChart(container, title, xlabel, joined[0], runs.map(function (r, i) {
      return { label: r.label, color: r.color, dash: r.dash, values: joined[i + 1] };
    }));
  };

  /* A scatter plot of points [{x, y, label, key}]; clicking a point calls pick(point). */
  st.scatter = function (container, title, xlabel, ylabel, points, pick) {
    points = points.slice().sort(function (a, b) { return a.x - b.x; });
    const xs = points.map(function (p) { return p.x; });
    const ys = points.map(function (p) { return p.y; });
    const nearest = function (u) {  // the point nearest to the cursor, in pixels
      let best = null, bestD = Infinity;
      for (let i = 0; i < xs.length; i++) {
        const dx = u.valToPos(xs[i], "x") - u.cursor.left;
        const dy = u.valToPos(ys[i], "y") - u.cursor.top;
        if (dx * dx + dy * dy < bestD) { bestD = dx * dx + dy * dy; best = i; }
      }
      return best;
    };
    let down = null;
    // room on both sides: the points at the ends (several may share an x) all show
    const pad = function (u, min, max) {
      const room = (max - min) * 0.05 || Math.abs(max) * 0.05 || 1;
      return [min - room, max + room];
    };
    const opts = {
      title: title,
      width: width(container),
      height: 320,
      scales: { x: { time: false, range: pad }, y: { range: pad } },
      axes: [{ label: xlabel }, { label: ylabel }],
      cursor: {
        drag: { x: true, y: true, uni: 30 },
        dataIdx: function (u, si, closest) { return si === 1 ? nearest(u) : closest; },
      },
      series: [
        { label: xlabel, value: function (u) {
          const i = u.cursor.idxs ? u.cursor.idxs[1] : null;
          return i === null || i === undefined ? "-" : st.fmt(xs[i]);
        } },
        { label: ylabel, stroke: st.COLORS[0], paths: function () { return null; },
          points: { show: true, size: 6, fill: st.COLORS[0] },
          value: function (u, v, si, i) {
            return i === null || i === undefined ? "-" : st.fmt(v) + "  " + points[i].label;
          } },
      ],
      hooks: { ready: [function (u) {
        u.over.addEventListener("mousedown", function (e) { down = [e.clientX, e.clientY]; });
        u.over.addEventListener("click", function (e) {
          const i = u.cursor.idxs ? u.cursor.idxs[1] : null;
          const still = down && Math.abs(e.clientX - down[0]) + Math.abs(e.clientY - down[1]) < 4;
          if (still && i !== null && i !== undefined && pick) pick(points[i]);
        });
      }] },
    };
    return keep(new uPlot(opts, [xs, ys], container), container, 1);
  };

  window.addEventListener("resize", function () {
    for (const chart of charts)
      chart.setSize({ width: width(chart.root.sagetrackContainer), height: chart.height });
  });
})();
