// Every style renders features from every one of its source layers, in Chromium.
//
// PARAMS.styles: the style ids to render (GET /styles/{id}, as the admin of the district).
// For each style layer the map jumps to a feature of its source layer (CITY.points) at
// zooms where both the tiles and the style layer show it, and counts what
// map.queryRenderedFeatures returns for every style layer not yet seen. Then a screenshot
// of the whole S city goes to ARTIFACTS/styles/<id>.png.
// Result: {<id>: {layers: {<source-layer>: {<style layer>: {features, zoom, datetime}}},
//          missing: [source layers], unseen: [style layers], screenshot, style_layers}}.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { ARTIFACTS, BASE, CITY, PARAMS, USERS, check, main, watch } from './lib.mjs';

const PAGE = `${BASE}/__onemap_test__`;
const viewer = USERS.admin;

function hostPage(maplibre) {
  return `<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="${maplibre}/maplibre-gl.css">
<style>html,body,#map{margin:0;width:100%;height:100%}</style>
<script src="${maplibre}/maplibre-gl.js"></script></head>
<body><div id="map"></div><script>
window.datetime = null;
window.map = new maplibregl.Map({
  container: 'map', style: {version: 8, sources: {}, layers: []},
  center: ${JSON.stringify(CITY.center)}, zoom: 14, fadeDuration: 0, attributionControl: false,
  localIdeographFontFamily: "'WenQuanYi Zen Hei', 'Noto Sans CJK SC', sans-serif",
  transformRequest: (url, kind) => {
    if (!url.startsWith(${JSON.stringify(BASE)})) return {url};
    if (window.datetime && kind === 'Tile') {
      url += (url.includes('?') ? '&' : '?') + 'datetime=' + encodeURIComponent(window.datetime);
    }
    return {url, headers: {Authorization: 'Bearer ${viewer.token}'}};
  },
});
window.idle = (timeout = 30000) => new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error('map not idle after ' + timeout + ' ms')), timeout);
  map.once('idle', () => { clearTimeout(t); resolve(); });
  map.triggerRepaint();
});
</script></body></html>`;
}

/** Zooms to look at a style layer: where the tiles carry its source layer and it draws. */
function zoomsFor(layer) {
  const [tmin, tmax] = CITY.zooms[layer['source-layer']] || [0, 22];
  const lo = Math.max(tmin, layer.minzoom ?? 0);
  const hi = Math.min(tmax + 1, layer.maxzoom ?? 24);
  const zooms = [Math.max(lo, Math.min(16, hi - 0.5)), lo + 0.5, (lo + hi) / 2,
    Math.min(hi - 0.5, 18)];
  return [...new Set(zooms.filter((z) => z >= lo && z < hi))];
}

async function renderStyle(page, id, style) {
  await page.evaluate(async (s) => { map.setStyle(s, { diff: false }); await idle(); }, style);
  const got = await page.evaluate(() => map.getStyle());
  const drawn = got.layers.filter((l) => l['source-layer']
    && got.sources[l.source]?.type === 'vector');
  check(drawn.length > 0, `style ${id} draws no vector source layer`);
  // Hidden layers must still draw when switched on: the test switches them on.
  await page.evaluate((ids) => ids.forEach((l) => map.setLayoutProperty(l, 'visibility', 'visible')),
    got.layers.filter((l) => l.layout?.visibility === 'none').map((l) => l.id));
  const seen = {}; // style layer id -> {features, zoom, datetime}
  const look = async (center, zoom, datetime) => {
    const todo = drawn.filter((l) => !seen[l.id]).map((l) => l.id);
    if (!todo.length) return;
    const counts = await page.evaluate(async ([c, z, ids]) => {
      map.jumpTo({ center: c, zoom: z });
      await idle();
      const n = {};
      for (const f of map.queryRenderedFeatures({ layers: ids })) n[f.layer.id] = (n[f.layer.id] || 0) + 1;
      return n;
    }, [center, zoom, todo]);
    for (const [lid, n] of Object.entries(counts)) seen[lid] = { features: n, zoom, datetime };
  };
  const fit = await page.evaluate((e) => map.cameraForBounds([[e[0], e[1]], [e[2], e[3]]],
    { padding: 20 }).zoom, CITY.extent);
  for (const datetime of [null, CITY.gps_datetime]) {
    if (drawn.every((l) => seen[l.id])) break;
    if (datetime) {
      // time-stamped live layers show the last hours by default: ask for the S city's history
      await page.evaluate(async ([s, dt]) => {
        window.datetime = dt; map.setStyle(s, { diff: false }); await idle();
      }, [style, datetime]);
    }
    // the whole city in view, at the zooms the layers need (one view serves many layers)
    const wide = new Set();
    for (const l of drawn.filter((x) => !seen[x.id])) {
      const zs = zoomsFor(l);
      const z = zs.length ? Math.max(Math.min(...zs), Math.min(fit, Math.max(...zs))) : null;
      if (z !== null && z <= fit) wide.add(Math.round(z * 4) / 4);
    }
    for (const z of [...wide].sort((x, y) => y - x)) await look(CITY.center, z, datetime);
    // closer: at a feature of the layer's source layer
    for (const layer of drawn) {
      for (const zoom of zoomsFor(layer)) {
        if (seen[layer.id]) break;
        await look(CITY.points[layer['source-layer']] || CITY.center, zoom, datetime);
      }
    }
  }
  // labels and icons may lose to other symbols in collision: alone, do they draw?
  for (const layer of drawn.filter((l) => !seen[l.id] && l.type === 'symbol')) {
    const others = got.layers.filter((l) => l.type === 'symbol' && l.id !== layer.id).map((l) => l.id);
    await page.evaluate((ids) => ids.forEach((l) => map.setLayoutProperty(l, 'visibility', 'none')), others);
    for (const zoom of zoomsFor(layer)) {
      if (seen[layer.id]) break;
      await look(CITY.points[layer['source-layer']] || CITY.center, zoom, null);
      if (seen[layer.id]) seen[layer.id].alone = true;
    }
    await page.evaluate((ids) => ids.forEach((l) => map.setLayoutProperty(l, 'visibility', 'visible')), others);
  }
  const layers = {};
  for (const l of drawn) {
    const sl = l['source-layer'];
    if (seen[l.id]) (layers[sl] ||= {})[l.id] = seen[l.id];
  }
  const missing = [...new Set(drawn.map((l) => l['source-layer']))].filter((sl) => !layers[sl]);
  const unseen = drawn.filter((l) => !seen[l.id]).map((l) => ({
    id: l.id, source_layer: l['source-layer'], zooms: [l.minzoom ?? 0, l.maxzoom ?? 24],
    filtered: Boolean(l.filter) }));
  await page.evaluate(() => { window.datetime = null; });
  // the screenshot: the whole S city
  await page.evaluate(async ([s, e]) => {
    map.setStyle(s, { diff: false });
    await idle();
    map.fitBounds([[e[0], e[1]], [e[2], e[3]]], { animate: false, padding: 20 });
    await idle();
  }, [style, CITY.extent]);
  const dir = path.join(ARTIFACTS, 'styles');
  mkdirSync(dir, { recursive: true });
  const screenshot = path.join(dir, `${id}.png`);
  await page.screenshot({ path: screenshot });
  return { layers, missing, unseen, screenshot, style_layers: got.layers.length };
}

await main(async (browser) => {
  const context = await browser.newContext({ viewport: { width: 1024, height: 768 } });
  // MapLibre as every client gets it: from the server's npm copy, never a CDN
  const maplibre = `${BASE}/static/maplibre-gl`;
  await context.route(`${PAGE}/map.html`, (route) =>
    route.fulfill({ body: hostPage(maplibre), contentType: 'text/html' }));
  const page = watch(await context.newPage(), 'styles');
  await page.goto(`${PAGE}/map.html`);
  await page.waitForFunction(() => window.map && window.map.loaded(), null, { timeout: 30000 });
  const webgl = await page.evaluate(() => !!document.createElement('canvas').getContext('webgl2'));
  check(webgl, 'no WebGL2 in headless Chromium');

  const result = {};
  for (const id of PARAMS.styles) result[id] = await renderStyle(page, id, `${BASE}/styles/${id}`);
  return { maplibre, styles: result };
});
