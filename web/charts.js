// Line charts as inline SVG, drawn from Prometheus matrices: no library.
// GraceCharts.line(title, series, unit, [start, end]) returns a <figure>;
// series is [{label, points: [[unix_s, value], ...]}]; the time axis is
// the window asked for, so a series that began late is drawn where it is.
'use strict';
(function () {
  const NS = 'http://www.w3.org/2000/svg';
  const W = 480, H = 200, L = 52, R = 8, T = 8, B = 22;

  function el(name, attrs, text) {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function fmt(v, unit) {
    if (unit === 's') {
      if (v === 0) return '0';
      if (v < 1e-3) return (v * 1e6).toFixed(0) + 'µs';
      if (v < 1) return (v * 1e3).toFixed(v < 0.01 ? 1 : 0) + 'ms';
      return v.toFixed(1) + 's';
    }
    if (Math.abs(v) >= 1000) return (v / 1000).toFixed(1) + 'k';
    return v >= 10 || v === 0 ? v.toFixed(0) : v.toFixed(2);
  }

  function clock(t, seconds) {
    const d = new Date(t * 1000), two = (n) => String(n).padStart(2, '0');
    return two(d.getHours()) + ':' + two(d.getMinutes()) + (seconds ? ':' + two(d.getSeconds()) : '');
  }

  function line(title, series, unit, span) {
    const fig = document.createElement('figure');
    fig.className = 'chart';
    const cap = document.createElement('figcaption');
    cap.textContent = title;
    fig.appendChild(cap);
    const [t0, t1] = span;
    let vmax = 0;
    for (const s of series)
      for (const [t, v] of s.points) {
        if (!Number.isFinite(v)) continue;
        vmax = Math.max(vmax, v);
      }
    const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img' });
    const desc = series.length
      ? `${title}: ${series.length} series, highest ${fmt(vmax, unit)}`
      : `${title}: no samples yet`;
    svg.setAttribute('aria-label', desc);
    svg.appendChild(el('title', {}, desc));
    if (vmax <= 0) vmax = 1;
    const x = (t) => L + (t - t0) / (t1 - t0) * (W - L - R);
    const y = (v) => T + (1 - v / vmax) * (H - T - B);
    svg.appendChild(el('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }));
    svg.appendChild(el('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }));
    for (let i = 0; i <= 4; i++) {
      const v = vmax * i / 4;
      svg.appendChild(el('text', { class: 'tick', x: L - 4, y: y(v) + 3, 'text-anchor': 'end' }, fmt(v, unit)));
      if (i) svg.appendChild(el('line', { class: 'axis', x1: L, y1: y(v), x2: W - R, y2: y(v), 'stroke-dasharray': '2 4' }));
    }
    for (let i = 0; i <= 3; i++) {
      const t = t0 + (t1 - t0) * i / 3;
      svg.appendChild(el('text', { class: 'tick', x: x(t), y: H - 6, 'text-anchor': i === 0 ? 'start' : i === 3 ? 'end' : 'middle' }, clock(t, t1 - t0 < 600)));
    }
    series.forEach((s, i) => {
      let d = '', pen = 'M';
      for (const [t, v] of s.points) {
        if (!Number.isFinite(v)) { pen = 'M'; continue; }
        d += `${pen}${x(t).toFixed(1)},${y(v).toFixed(1)} `;
        pen = 'L';
      }
      if (d) svg.appendChild(el('path', { class: `line c${i % 8}`, d }));
      // A lone sample has no line to draw: a dot shows it.
      if (s.points.length === 1 && Number.isFinite(s.points[0][1]))
        svg.appendChild(el('circle', { class: `dot c${i % 8}`, cx: x(s.points[0][0]), cy: y(s.points[0][1]), r: 2.5 }));
    });
    fig.appendChild(svg);
    const legend = document.createElement('ul');
    legend.className = 'legend';
    series.forEach((s, i) => {
      const li = document.createElement('li');
      const sw = document.createElement('span');
      sw.className = `swatch c${i % 8}`;
      li.append(sw, s.label);
      legend.appendChild(li);
    });
    if (!series.length) {
      const li = document.createElement('li');
      li.textContent = 'no samples yet';
      legend.appendChild(li);
    }
    fig.appendChild(legend);
    return fig;
  }

  window.GraceCharts = { line };
})();
