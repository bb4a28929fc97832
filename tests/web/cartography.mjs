// What a user sees where each style lands, and one switch later (issue 13).
//
// PARAMS.styles: the style ids. For each style the map opens at the style's own
// center/zoom (as the admin of the district), then at zoom 13 and 15 over a compound
// (CITY.household.point). At each view map.queryRenderedFeatures counts, per style layer,
// what is drawn, and how many drawn features are history (closed/evaluated events,
// resolved/closed/invalid alley problems, cleaned/closed spills). At the landing view the
// hidden layers (layout visibility none: the history) are then switched on and counted.
// Screenshots: ARTIFACTS/cartography/<id>-{landing,history,z13,z15}.png.
// Result: {<id>: {center, zoom, views: {landing|z13|z15: {layers, thematic, reference,
//          history_drawn, symbols}}, history: {layers, features}, screenshots: [...]}}.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { ARTIFACTS, BASE, CITY, PARAMS, USERS, check, main, watch } from './lib.mjs';

const PAGE = `${BASE}/__onemap_test__`;
const viewer = USERS.admin;
const HISTORY = {
  event: ['closed', 'evaluated'],
  alley_problem: ['resolved', 'closed', 'invalid'],
  spill_report: ['cleaned', 'closed'],
};

function hostPage(maplibre) {
  return `<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="${maplibre}/maplibre-gl.css">
<style>html,body,#map{margin:0;width:100%;height:100%}</style>
<script src="${maplibre}/maplibre-gl.js"></script></head>
<body><div id="map"></div><script>
window.map = new maplibregl.Map({
  container: 'map', style: {version: 8, sources: {}, layers: []},
  center: ${JSON.stringify(CITY.center)}, zoom: 14, fadeDuration: 0, attributionControl: false,
  localIdeographFontFamily: "'WenQuanYi Zen Hei', 'Noto Sans CJK SC', sans-serif",
  transformRequest: (url) => (url.startsWith(${JSON.stringify(BASE)})
    ? {url, headers: {Authorization: 'Bearer ${viewer.token}'}} : {url}),
});
window.idle = (timeout = 30000) => new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error('map not idle after ' + timeout + ' ms')), timeout);
  map.once('idle', () => { clearTimeout(t); resolve(); });
  map.triggerRepaint();
});
</script></body></html>`;
}

/** Counts of what is drawn in the current view. */
async function census(page) {
  return page.evaluate(([history]) => {
    const style = map.getStyle();
    const group = Object.fromEntries(style.layers.map((l) => [l.id,
      (l.metadata && l.metadata['onemap:group']) || 'reference']));
    const layers = {};
    let thematic = 0; let reference = 0; let historyDrawn = 0; let symbols = 0;
    const seen = new Set();
    for (const f of map.queryRenderedFeatures()) {
      layers[f.layer.id] = (layers[f.layer.id] || 0) + 1;
      if (group[f.layer.id] === 'thematic') thematic += 1; else reference += 1;
      if (f.layer.type === 'symbol') symbols += 1;
      const past = history[f.sourceLayer];
      const key = `${f.sourceLayer}/${f.id}`;
      if (past && past.includes(f.properties.status) && !seen.has(key)) {
        seen.add(key);
        historyDrawn += 1;
      }
    }
    return { layers, thematic, reference, history_drawn: historyDrawn, symbols };
  }, [HISTORY]);
}

async function shoot(page, id, view) {
  const dir = path.join(ARTIFACTS, 'cartography');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${id}-${view}.png`);
  await page.screenshot({ path: file });
  return file;
}

async function renderStyle(page, id) {
  const url = `${BASE}/styles/${id}`;
  const style = await page.evaluate(async (u) => {
    map.setStyle(u, { diff: false });
    await idle();
    const s = map.getStyle();
    return { center: s.center, zoom: s.zoom };
  }, url);
  check(Array.isArray(style.center) && typeof style.zoom === 'number',
    `style ${id} has no center/zoom of its own`);
  const views = {};
  const screenshots = [];
  const go = async (center, zoom) => page.evaluate(async ([c, z]) => {
    map.jumpTo({ center: c, zoom: z });
    await idle();
  }, [center, zoom]);
  await go(style.center, style.zoom);
  views.landing = await census(page);
  screenshots.push(await shoot(page, id, 'landing'));
  // one switch away: the hidden layers (the history) on, at the same view
  const hidden = await page.evaluate(() => map.getStyle().layers
    .filter((l) => l.layout && l.layout.visibility === 'none').map((l) => l.id));
  let history = { layers: {}, features: 0 };
  if (hidden.length) {
    history = await page.evaluate(async (ids) => {
      ids.forEach((l) => map.setLayoutProperty(l, 'visibility', 'visible'));
      await idle();
      const layers = {};
      for (const f of map.queryRenderedFeatures({ layers: ids })) {
        layers[f.layer.id] = (layers[f.layer.id] || 0) + 1;
      }
      return { layers, features: Object.values(layers).reduce((a, b) => a + b, 0) };
    }, hidden);
    screenshots.push(await shoot(page, id, 'history'));
    await page.evaluate(async (ids) => {
      ids.forEach((l) => map.setLayoutProperty(l, 'visibility', 'none'));
      await idle();
    }, hidden);
  }
  for (const z of [13, 15]) {
    await go(CITY.household.point, z);
    views[`z${z}`] = await census(page);
    screenshots.push(await shoot(page, id, `z${z}`));
  }
  return { center: style.center, zoom: style.zoom, hidden, views, history, screenshots };
}

await main(async (browser) => {
  const context = await browser.newContext({ viewport: { width: 1024, height: 768 } });
  const maplibre = `${BASE}/static/maplibre-gl`;
  await context.route(`${PAGE}/map.html`, (route) =>
    route.fulfill({ body: hostPage(maplibre), contentType: 'text/html' }));
  const page = watch(await context.newPage(), 'cartography');
  await page.goto(`${PAGE}/map.html`);
  await page.waitForFunction(() => window.map && window.map.loaded(), null, { timeout: 30000 });
  const result = {};
  for (const id of PARAMS.styles) result[id] = await renderStyle(page, id);
  return { styles: result };
});
