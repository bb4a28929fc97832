// The first view of the widget, per style: navigation to the map's first `idle`, the
// requests it took, and when the view statistics started. Run by
// bench/bench_first_view.py (figures, not assertions; tests/web/test_first_view.py
// only checks that it runs).
//
// PARAMS: {themes: [style id…], key: API key, repeat: warm loads per theme}.
// Per theme: a new browser context (empty HTTP cache) opens /widget/?theme=…#key=…
// (the data-centred default view, 1280×800) — "cold" — then loads it `repeat` times
// more in that context — "warm" (the browser's cache and the server's tile cache).
import { BASE, PARAMS, check, main, watch } from './lib.mjs';

const TILE = /\/tiles\/.*\/\d+\/\d+\/\d+(\?|$)/;

// Requests as the browser sends them (MapLibre fetches tiles in its workers, whose
// requests the page's resource timing does not list), with their wall-clock time.
const SENT = [];

async function load(page, url) {
  SENT.length = 0;
  await page.goto(url);
  await page.waitForFunction(() => window.onemap && window.onemap.widgets
    && window.onemap.widgets[0] && window.onemap.widgets[0].timing.firstIdle, null,
  { timeout: 120000 });
  // the statistics, if any, start after the idle: give them a moment to be sent
  await page.waitForTimeout(1500);
  const seen = await page.evaluate(() => {
    const w = window.onemap.widgets[0];
    const c = w.map.getCenter();
    return { origin: performance.timeOrigin, idle: w.timing.firstIdle, map: w.timing.map,
      stats: w.timing.statsStart == null ? null : w.timing.statsStart,
      center: [c.lng, c.lat], zoom: w.map.getZoom(), style_source: w.styleSource,
      rendered: w.map.queryRenderedFeatures().length };
  });
  const idleAt = seen.origin + seen.idle;
  const before = SENT.filter((r) => r.at <= idleAt);
  const tiles = before.filter((r) => TILE.test(r.url));
  const sources = {};
  const positions = new Set();
  tiles.forEach((r) => {
    const m = r.url.match(/\/(tiles\/[^/]+|collections\/[^/]+\/tiles)\//);
    const k = m ? m[1] : 'other';
    sources[k] = (sources[k] || 0) + 1;
    positions.add(r.url.match(/\/(\d+\/\d+\/\d+)(\?|$)/)[1]);  // z/y/x
  });
  return { idle_ms: Math.round(seen.idle), map_ms: Math.round(seen.map),
    requests: before.length, tile_requests: tiles.length, tile_sources: sources,
    // tile positions of the view: one request each when a style reads one source
    tile_positions: positions.size,
    // both in the page's clock: the statistics' request vs the first idle
    stats_started_ms: seen.stats == null ? null : Math.round(seen.stats),
    stats_after_idle: seen.stats == null ? null : seen.stats >= seen.idle,
    center: seen.center, zoom: seen.zoom, style_source: seen.style_source,
    rendered: seen.rendered };
}

await main(async (browser) => {
  const out = {};
  check(PARAMS.themes && PARAMS.themes.length, 'no themes to load');
  for (const theme of PARAMS.themes) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = watch(await context.newPage(), theme);
    page.on('request', (r) => SENT.push({ url: r.url(), at: Date.now() }));
    const url = `${BASE}/widget/?theme=${encodeURIComponent(theme)}&lang=zh#key=${PARAMS.key}`;
    const cold = await load(page, url);
    const warm = [];
    for (let i = 0; i < (PARAMS.repeat || 1); i += 1) {
      // another query string: a new document, not a jump to a fragment
      warm.push(await load(page, url.replace('#', `&run=${i}#`)));
    }
    out[theme] = { cold, warm };
    await context.close();
  }
  return out;
});
