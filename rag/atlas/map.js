// ragbot knowledge map: a canvas renderer for up to ~100k points, no libraries, no network.
// Points are drawn per colour in one path each; a uniform grid finds the point under the cursor;
// cluster labels are placed largest first and dropped where they would overlap (so they thin
// out when zoomed out). Everything the page shows is in the JSON block of this file.
(function () {
  'use strict';
  var DATA = JSON.parse(document.getElementById('map-data').textContent);
  var BG = '#fafafa';
  // labels may be Japanese: name fonts that carry kana and kanji where they are installed
  var FONTS = '"Noto Sans CJK JP", "Noto Sans JP", "IPAexGothic", "IPAGothic", "Hiragino Sans", "Hiragino Kaku Gothic ProN", "Yu Gothic", Meiryo, system-ui, sans-serif';
  var MIN_POINT_PX = 3; // never smaller than this, however many points

  // the q-quantile of a typed array (a copy is sorted)
  function quantile(values, q) {
    if (!values.length) return 0.5;
    var s = Float32Array.from(values).sort();
    return s[Math.min(s.length - 1, Math.max(0, Math.round(q * (s.length - 1))))];
  }
  var searchBox = document.getElementById('search');
  var statusEl = document.getElementById('status');
  var tip = document.getElementById('tooltip');
  var panels = [];
  var rafPending = false;

  function scheduleDraw() {
    if (rafPending) return;
    rafPending = true;
    requestAnimationFrame(function () {
      rafPending = false;
      for (var i = 0; i < panels.length; i++) panels[i].draw();
    });
  }

  function Panel(d, index, root) {
    this.d = d;
    this.index = index;
    this.n = d.n;
    var n = d.n, i;
    this.xs = new Float32Array(n);
    this.ys = new Float32Array(n);
    for (i = 0; i < n; i++) { this.xs[i] = d.x[i] / 10000; this.ys[i] = d.y[i] / 10000; }
    // points grouped by colour: one fill per colour per frame
    var counts = new Int32Array(d.categories.length);
    for (i = 0; i < n; i++) counts[d.color[i]]++;
    this.groups = d.categories.map(function (c, ci) { return { color: c.color, idx: new Int32Array(counts[ci]), fill: 0 }; });
    for (i = 0; i < n; i++) { var g = this.groups[d.color[i]]; g.idx[g.fill++] = i; }
    // draw big groups first, so small categories stay visible on top
    this.order = this.groups.slice().sort(function (a, b) { return b.idx.length - a.idx.length; });
    this.topicByCluster = {};
    for (i = 0; i < d.topics.length; i++) this.topicByCluster[d.topics[i].cluster] = d.topics[i];
    // the bulk of the points (2nd to 98th percentile): one far-away cluster must not squeeze the rest
    var bulk = [quantile(this.xs, 0.02), quantile(this.ys, 0.02), quantile(this.xs, 0.98), quantile(this.ys, 0.98)];
    var all = [quantile(this.xs, 0), quantile(this.ys, 0), quantile(this.xs, 1), quantile(this.ys, 1)];
    // the whole extent when it is not much larger than the bulk: then every point stays in view
    var wider = (all[2] - all[0]) > 1.5 * (bulk[2] - bulk[0]) || (all[3] - all[1]) > 1.5 * (bulk[3] - bulk[1]);
    this.bulk = wider ? bulk : all;
    this.buildGrid();
    this.hl = null; // Uint8Array: 1 match, 2 neighbour of a match
    this.hover = -1;
    this.selected = -1;
    this.peer = -1; // the partner of the point hovered in the other panel
    this.drawn = 0;
    this.placedLabels = [];
    this.lower = null;

    var el = document.createElement('div');
    el.className = 'panel';
    el.innerHTML = '<canvas></canvas><div class="caption"></div><div class="legend"></div>';
    root.appendChild(el);
    this.el = el;
    this.canvas = el.querySelector('canvas');
    this.ctx = this.canvas.getContext('2d');
    el.querySelector('.caption').textContent = d.name + (d.model ? ' \u2014 ' + d.model : '') + ' \u2014 ' + n.toLocaleString() + ' chunks';
    this.buildLegend(el.querySelector('.legend'));
    this.bind();
  }

  Panel.prototype.buildGrid = function () {
    var n = this.n;
    var G = Math.max(1, Math.min(512, Math.ceil(Math.sqrt(n / 8))));
    var cellOf = new Int32Array(n), start = new Int32Array(G * G + 1), i;
    for (i = 0; i < n; i++) {
      var cx = Math.min(G - 1, Math.max(0, Math.floor(this.xs[i] * G)));
      var cy = Math.min(G - 1, Math.max(0, Math.floor(this.ys[i] * G)));
      cellOf[i] = cy * G + cx;
      start[cellOf[i] + 1]++;
    }
    for (i = 0; i < G * G; i++) start[i + 1] += start[i];
    var fill = start.slice(0, G * G), items = new Int32Array(n);
    for (i = 0; i < n; i++) items[fill[cellOf[i]]++] = i;
    this.grid = { G: G, start: start, items: items };
  };

  // the point nearest to a world position within radius r (world units), or -1
  Panel.prototype.nearest = function (wx, wy, r) {
    var g = this.grid, G = g.G, best = -1, bestD = r * r;
    var x0 = Math.max(0, Math.floor((wx - r) * G)), x1 = Math.min(G - 1, Math.floor((wx + r) * G));
    var y0 = Math.max(0, Math.floor((wy - r) * G)), y1 = Math.min(G - 1, Math.floor((wy + r) * G));
    for (var cy = y0; cy <= y1; cy++) for (var cx = x0; cx <= x1; cx++) {
      var c = cy * G + cx;
      for (var k = g.start[c]; k < g.start[c + 1]; k++) {
        var i = g.items[k], dx = this.xs[i] - wx, dy = this.ys[i] - wy, dd = dx * dx + dy * dy;
        if (dd <= bestD) { bestD = dd; best = i; }
      }
    }
    return best;
  };

  // the initial view: the bulk of the points fills the panel (outliers may fall outside; zoom out to see them)
  Panel.prototype.fit = function () {
    var w = this.canvas.clientWidth, h = this.canvas.clientHeight, b = this.bulk;
    var bw = Math.max(b[2] - b[0], 0.02), bh = Math.max(b[3] - b[1], 0.02);
    var k = Math.max(10, Math.min(w / bw, h / bh) * 0.88);
    this.base = k;
    this.view = { k: k, tx: w / 2 - k * (b[0] + b[2]) / 2, ty: h / 2 - k * (b[1] + b[3]) / 2 };
  };

  // point size in CSS pixels: larger when there are few points or when zoomed in, never below MIN_POINT_PX
  Panel.prototype.pointSize = function () {
    var w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    var spacing = Math.sqrt((w * h) / Math.max(1, this.n)); // room per point at the initial view
    var atFit = Math.max(MIN_POINT_PX, Math.min(8, spacing * 0.22));
    var zoom = this.view.k / this.base;
    var grown = zoom > 1 ? atFit * (1 + 0.45 * Math.log2(zoom)) : atFit;
    return Math.max(MIN_POINT_PX, Math.min(16, grown));
  };

  Panel.prototype.resize = function () {
    var dpr = window.devicePixelRatio || 1;
    this.dpr = dpr;
    this.canvas.width = Math.max(1, Math.round(this.canvas.clientWidth * dpr));
    this.canvas.height = Math.max(1, Math.round(this.canvas.clientHeight * dpr));
    if (!this.view) this.fit();
  };

  Panel.prototype.toWorld = function (sx, sy) {
    return [(sx - this.view.tx) / this.view.k, (sy - this.view.ty) / this.view.k];
  };

  Panel.prototype.draw = function () {
    var ctx = this.ctx, v = this.view, w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    ctx.globalAlpha = 1;
    ctx.fillStyle = BG;
    ctx.fillRect(0, 0, w, h);
    var size = this.pointSize();
    this.size = size;
    var half = size / 2, xs = this.xs, ys = this.ys, k = v.k, tx = v.tx - half, ty = v.ty - half;
    var drawn = 0, hl = this.hl;
    ctx.globalAlpha = hl ? 0.15 : 0.8;
    for (var gi = 0; gi < this.order.length; gi++) {
      var grp = this.order[gi], idx = grp.idx;
      ctx.fillStyle = grp.color;
      ctx.beginPath();
      for (var j = 0; j < idx.length; j++) {
        var i = idx[j], sx = xs[i] * k + tx, sy = ys[i] * k + ty;
        if (sx < -size || sy < -size || sx > w || sy > h) continue;
        ctx.rect(sx, sy, size, size);
        drawn++;
      }
      ctx.fill();
    }
    this.drawn = drawn;
    if (hl) this.drawHighlights(size);
    this.drawRing(this.selected, '#111', size + 7);
    this.drawRing(this.hover, '#111', size + 5);
    this.drawRing(this.peer, '#d1242f', size + 9);
    this.drawLabels(w, h);
  };

  Panel.prototype.drawHighlights = function (size) {
    var ctx = this.ctx, v = this.view, hl = this.hl, big = size + 2.5, i;
    ctx.globalAlpha = 1;
    ctx.lineWidth = 1;
    ctx.strokeStyle = '#222';
    ctx.beginPath();
    for (i = 0; i < this.n; i++) if (hl[i] === 2) ctx.rect(this.xs[i] * v.k + v.tx - size / 2 - 1, this.ys[i] * v.k + v.ty - size / 2 - 1, size + 2, size + 2);
    ctx.stroke();
    for (var gi = 0; gi < this.groups.length; gi++) {
      var grp = this.groups[gi];
      ctx.fillStyle = grp.color;
      ctx.beginPath();
      for (var j = 0; j < grp.idx.length; j++) {
        i = grp.idx[j];
        if (hl[i] === 1) ctx.rect(this.xs[i] * v.k + v.tx - big / 2, this.ys[i] * v.k + v.ty - big / 2, big, big);
      }
      ctx.fill();
    }
  };

  Panel.prototype.drawRing = function (i, color, r) {
    if (i < 0) return;
    var ctx = this.ctx, v = this.view;
    ctx.globalAlpha = 1;
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.arc(this.xs[i] * v.k + v.tx, this.ys[i] * v.k + v.ty, r / 2 + 2, 0, 2 * Math.PI);
    ctx.stroke();
  };

  Panel.prototype.drawLabels = function (w, h) {
    var ctx = this.ctx, v = this.view, topics = this.d.topics, placed = [];
    ctx.globalAlpha = 1;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    ctx.lineJoin = 'round';
    var largest = topics.length ? topics[0].size : 1;
    for (var t = 0; t < topics.length; t++) {
      var tp = topics[t], sx = tp.x / 10000 * v.k + v.tx, sy = tp.y / 10000 * v.k + v.ty;
      if (sx < 0 || sy < 0 || sx > w || sy > h) continue;
      var fs = Math.round(11 + 5 * Math.sqrt(tp.size / largest));
      ctx.font = '600 ' + fs + 'px ' + FONTS;
      var tw = ctx.measureText(tp.label).width, box = [sx - tw / 2 - 3, sy - fs / 2 - 2, sx + tw / 2 + 3, sy + fs / 2 + 2];
      var clash = false;
      for (var p = 0; p < placed.length && !clash; p++) {
        var b = placed[p].box;
        clash = box[0] < b[2] && box[2] > b[0] && box[1] < b[3] && box[3] > b[1];
      }
      if (clash) continue;
      placed.push({ cluster: tp.cluster, box: box });
      ctx.lineWidth = 4;
      ctx.strokeStyle = 'rgba(255,255,255,0.9)';
      ctx.strokeText(tp.label, sx, sy);
      ctx.fillStyle = '#1f2328';
      ctx.fillText(tp.label, sx, sy);
    }
    this.placedLabels = placed.map(function (p) { return p.cluster; });
  };

  Panel.prototype.buildLegend = function (el) {
    var self = this, cats = this.d.categories.map(function (c, i) { return { c: c, i: i }; });
    cats.sort(function (a, b) { return b.c.count - a.c.count; });
    var shown = cats.slice(0, 14);
    shown.forEach(function (item) {
      var row = document.createElement('div');
      var sw = document.createElement('i');
      sw.style.background = item.c.color;
      var name = document.createElement('span');
      name.textContent = item.c.name + ' ';
      var small = document.createElement('small');
      small.textContent = item.c.count.toLocaleString();
      name.appendChild(small);
      row.appendChild(sw);
      row.appendChild(name);
      row.title = item.c.name;
      row.addEventListener('click', function () {
        var on = !row.classList.contains('on');
        Array.prototype.forEach.call(el.children, function (r) { r.classList.remove('on'); });
        if (on) row.classList.add('on');
        searchBox.value = '';
        highlightWhere(on ? function (p, i) { return p === self && self.d.color[i] === item.i; } : null, false);
      });
      el.appendChild(row);
    });
    if (cats.length > shown.length) {
      var more = document.createElement('small');
      more.textContent = '+ ' + (cats.length - shown.length) + ' more';
      el.appendChild(more);
    }
    if (DATA.colorBy) {
      var head = document.createElement('small');
      head.textContent = 'colour: ' + DATA.colorBy;
      el.insertBefore(head, el.firstChild);
    }
  };

  Panel.prototype.showTip = function (i, cx, cy) {
    if (i < 0) { tip.style.display = 'none'; return; }
    var d = this.d, topic = this.topicByCluster[d.cluster[i]];
    tip.innerHTML = '';
    var src = document.createElement('div');
    src.className = 'src';
    src.textContent = d.sources[d.src[i]] + (d.loc[i] ? ' \u2014 ' + d.loc[i] : '');
    var body = document.createElement('div');
    body.textContent = d.text[i];
    var foot = document.createElement('div');
    foot.className = 'topic';
    foot.textContent = (topic ? 'topic: ' + topic.label : 'unclustered') + (d.hrefs[d.src[i]] ? ' \u2014 click to open the source' : '');
    tip.appendChild(src);
    tip.appendChild(body);
    tip.appendChild(foot);
    tip.style.display = 'block';
    var x = Math.min(cx + 14, window.innerWidth - tip.offsetWidth - 8), y = cy + 14;
    if (y + tip.offsetHeight > window.innerHeight - 8) y = Math.max(8, cy - tip.offsetHeight - 14);
    tip.style.left = x + 'px';
    tip.style.top = y + 'px';
  };

  Panel.prototype.pick = function (ev) {
    var r = this.canvas.getBoundingClientRect(), w = this.toWorld(ev.clientX - r.left, ev.clientY - r.top);
    return this.nearest(w[0], w[1], 8 / this.view.k);
  };

  Panel.prototype.partnerIn = function (other, i) {
    if (i < 0 || !this.d.partner) return -1;
    return this.d.partner[i];
  };

  Panel.prototype.bind = function () {
    var self = this, c = this.canvas, drag = null;
    c.addEventListener('wheel', function (ev) {
      ev.preventDefault();
      var r = c.getBoundingClientRect(), mx = ev.clientX - r.left, my = ev.clientY - r.top;
      self.zoomAt(mx, my, Math.exp(-ev.deltaY * 0.0015));
    }, { passive: false });
    c.addEventListener('mousedown', function (ev) {
      drag = { x: ev.clientX, y: ev.clientY, moved: 0 };
      c.classList.add('dragging');
    });
    window.addEventListener('mouseup', function (ev) {
      if (!drag) return;
      var click = drag.moved < 4 && ev.target === c;
      drag = null;
      c.classList.remove('dragging');
      if (click) self.click(self.pick(ev));
    });
    c.addEventListener('mousemove', function (ev) {
      if (drag) {
        var dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
        drag.moved += Math.abs(dx) + Math.abs(dy);
        drag.x = ev.clientX;
        drag.y = ev.clientY;
        self.view.tx += dx;
        self.view.ty += dy;
        tip.style.display = 'none';
        scheduleDraw();
        return;
      }
      var i = self.pick(ev);
      if (i !== self.hover) {
        self.hover = i;
        panels.forEach(function (p) { if (p !== self) p.peer = self.partnerIn(p, i); });
        scheduleDraw();
      }
      self.showTip(i, ev.clientX, ev.clientY);
    });
    c.addEventListener('mouseleave', function () {
      self.hover = -1;
      panels.forEach(function (p) { if (p !== self) p.peer = -1; });
      tip.style.display = 'none';
      scheduleDraw();
    });
  };

  Panel.prototype.zoomAt = function (mx, my, f) {
    var v = this.view, k = Math.max(this.base * 0.5, Math.min(this.base * 2000, v.k * f));
    f = k / v.k;
    v.tx = mx - (mx - v.tx) * f;
    v.ty = my - (my - v.ty) * f;
    v.k = k;
    scheduleDraw();
  };

  // select a point here and its partner in the other map; open its source when it has one
  Panel.prototype.click = function (i) {
    var self = this;
    panels.forEach(function (p) { p.selected = p === self ? i : self.partnerIn(p, i); });
    if (i >= 0) {
      var d = this.d;
      statusEl.textContent = 'Selected: ' + d.sources[d.src[i]] + (d.loc[i] ? ' \u2014 ' + d.loc[i] : '');
      var href = d.hrefs[d.src[i]];
      if (href) window.open(href, '_blank', 'noopener');
    }
    scheduleDraw();
  };

  Panel.prototype.zoomTo = function (indices) {
    if (!indices.length) return;
    var x0 = 1, y0 = 1, x1 = 0, y1 = 0;
    indices.forEach(function (i) {
      x0 = Math.min(x0, this.xs[i]); x1 = Math.max(x1, this.xs[i]);
      y0 = Math.min(y0, this.ys[i]); y1 = Math.max(y1, this.ys[i]);
    }, this);
    var w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    var span = Math.max(x1 - x0, y1 - y0, 0.02), k = Math.min(w, h) * 0.8 / span;
    this.view = { k: k, tx: w / 2 - (x0 + x1) / 2 * k, ty: h / 2 - (y0 + y1) / 2 * k };
  };

  // mark points for which test(panel, i) holds, and (with neighbours) their nearest neighbours
  function highlightWhere(test, neighbours) {
    var matches = 0, near = 0;
    panels.forEach(function (p) {
      if (!test) { p.hl = null; return; }
      var hl = new Uint8Array(p.n), k = p.d.k, nbr = p.d.nbr, i, j;
      for (i = 0; i < p.n; i++) if (test(p, i)) hl[i] = 1;
      if (neighbours) for (i = 0; i < p.n; i++) if (hl[i] === 1) for (j = 0; j < k; j++) {
        var m = nbr[i * k + j];
        if (m >= 0 && hl[m] === 0) hl[m] = 2;
      }
      for (i = 0; i < p.n; i++) { if (hl[i] === 1) matches++; else if (hl[i] === 2) near++; }
      p.hl = hl;
    });
    statusEl.textContent = test ? matches.toLocaleString() + ' match(es)' + (near ? ', ' + near.toLocaleString() + ' neighbour(s)' : '') : '';
    scheduleDraw();
  }

  function runSearch() {
    var q = searchBox.value.trim().toLowerCase();
    if (!q) { highlightWhere(null); return; }
    panels.forEach(function (p) {
      if (!p.lower) {
        p.lower = p.d.text.map(function (t) { return t.toLowerCase(); });
        p.lowerSrc = p.d.sources.map(function (s) { return s.toLowerCase(); });
      }
    });
    highlightWhere(function (p, i) { return p.lower[i].indexOf(q) >= 0 || p.lowerSrc[p.d.src[i]].indexOf(q) >= 0; }, true);
  }

  function nonBlankPixels(p) {
    var img = p.ctx.getImageData(0, 0, p.canvas.width, p.canvas.height).data, count = 0;
    for (var i = 0; i < img.length; i += 4) if (img[i] !== 0xfa || img[i + 1] !== 0xfa || img[i + 2] !== 0xfa) count++;
    return count;
  }

  // #selftest=QUERY: render, search QUERY, and write what happened into <pre id=selftest>
  function selfTest(query) {
    panels.forEach(function (p) { p.draw(); });
    var out = { panels: panels.map(function (p) {
      var b = p.bulk, v = p.view;
      return {
        n: p.n, drawn: p.drawn, labels: p.placedLabels.length, nonBlank: nonBlankPixels(p), pointSize: p.size,
        // the share of the panel's width and height that the bulk of the points spans on screen
        bulkSpan: [(b[2] - b[0]) * v.k / p.canvas.clientWidth, (b[3] - b[1]) * v.k / p.canvas.clientHeight],
      };
    }) };
    var probe = document.createElement('canvas').getContext('2d'), style = getComputedStyle(searchBox);
    probe.font = style.fontSize + ' ' + style.fontFamily;
    out.placeholder = { text: searchBox.placeholder, width: probe.measureText(searchBox.placeholder).width,
      room: searchBox.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) };
    out.labelFont = FONTS;
    // Japanese drawn in the label font differs from the same number of missing-glyph boxes only
    // when a font with kana and kanji was found
    function ink(text) {
      var c = document.createElement('canvas'); c.width = 120; c.height = 40;
      var x = c.getContext('2d'); x.font = '600 24px ' + FONTS; x.fillStyle = '#000'; x.fillText(text, 4, 28);
      return Array.prototype.join.call(x.getImageData(0, 0, 120, 40).data, ',');
    }
    out.cjkGlyphs = ink('\u4f1a\u8b70\u5ba4') !== ink('\uffff\uffff\uffff');
    searchBox.value = query;
    runSearch();
    panels.forEach(function (p) { p.draw(); });
    out.matches = panels.map(function (p) { var r = []; for (var i = 0; i < p.n; i++) if (p.hl && p.hl[i] === 1) r.push(i); return r; });
    out.highlighted = panels.map(function (p) { var r = []; for (var i = 0; i < p.n; i++) if (p.hl && p.hl[i] > 0) r.push(i); return r; });
    out.status = statusEl.textContent;
    // zoomed in 8x, more labels fit than zoomed out
    var p0 = panels[0];
    p0.zoomAt(p0.canvas.clientWidth / 2, p0.canvas.clientHeight / 2, 8);
    p0.draw();
    out.labelsZoomed = p0.placedLabels.length;
    out.pointSizeZoomed = p0.size;
    p0.fit();
    searchBox.value = '';
    runSearch();
    panels.forEach(function (p) { p.draw(); });
    out.resources = performance.getEntriesByType('resource').map(function (e) { return e.name; });
    document.getElementById('selftest').textContent = JSON.stringify(out);
  }

  // #bench=FRAMES: time FRAMES pan steps (drawing every point) on the first map
  function bench(frames) {
    var p = panels[0], times = [];
    p.draw();
    for (var f = 0; f < frames; f++) {
      var t0 = performance.now();
      p.view.tx += (f % 40 < 20 ? 6 : -6);
      p.view.ty += (f % 20 < 10 ? 3 : -3);
      p.draw();
      p.ctx.getImageData(0, 0, 1, 1); // wait for the raster, not just the command recording
      times.push(performance.now() - t0);
    }
    times.sort(function (a, b) { return a - b; });
    var sum = times.reduce(function (a, b) { return a + b; }, 0);
    document.getElementById('selftest').textContent = JSON.stringify({
      n: p.n, frames: frames, mean_ms: sum / frames, p50_ms: times[Math.floor(frames / 2)], p95_ms: times[Math.floor(frames * 0.95)],
      drawn: p.drawn, width: p.canvas.width, height: p.canvas.height
    });
  }

  function start() {
    document.title = DATA.title;
    document.getElementById('note').textContent = DATA.note || '';
    var root = document.getElementById('panels');
    DATA.panels.forEach(function (d, i) { panels.push(new Panel(d, i, root)); });
    panels.forEach(function (p) { p.resize(); p.fit(); });
    statusEl.textContent = '';
    var timer = null;
    searchBox.addEventListener('input', function () { clearTimeout(timer); timer = setTimeout(runSearch, 150); });
    searchBox.addEventListener('keydown', function (ev) {
      if (ev.key !== 'Enter') return;
      runSearch();
      panels.forEach(function (p) {
        if (!p.hl) return;
        var r = []; for (var i = 0; i < p.n; i++) if (p.hl[i] === 1) r.push(i);
        p.zoomTo(r);
      });
      scheduleDraw();
    });
    document.getElementById('reset').addEventListener('click', function () { panels.forEach(function (p) { p.fit(); }); scheduleDraw(); });
    window.addEventListener('resize', function () {
      panels.forEach(function (p) { p.resize(); p.fit(); });
      scheduleDraw();
    });
    var hash = decodeURIComponent(location.hash.slice(1));
    if (hash.indexOf('selftest=') === 0) selfTest(hash.slice(9));
    else if (hash.indexOf('bench=') === 0) bench(parseInt(hash.slice(6), 10) || 100);
    else panels.forEach(function (p) { p.draw(); });
  }

  start();
})();
