// Refuse-building placement (refuse-placement) from the widget's analysis panel, as a
// planner would run it: the refuse map opened with the district administrator's API key,
// 分析 opened, refuse-placement chosen, a community chosen from the form's list, p-median
// adding one site, and the candidate sites added by clicking the map (在地图上添加候选点):
// a stray point added and cleared, the two street corners PARAMS.corners added, a third
// stray point added and removed with its button. Then the run (an async job), its progress,
// results, legend and summary. PARAMS.community (id, centre) and PARAMS.corners ([lon, lat]
// × 2) come from the API (tests/web/test_widget_placement.py), which checks everything
// returned here against it. Screenshots: var/test-artifacts/widget-placement/.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { ARTIFACTS, BASE, PARAMS, USERS, analysisRendered, analysisShown, check, main, mapGoTo,
  mapPixel, until, watch } from './lib.mjs';

const who = USERS[PARAMS.user || 'admin'];
const FIELD = 'candidate_points';

/** The points field: its list, the numbered markers on the map, the value it would send. */
const pointsShown = (page) => page.evaluate((field) => {
  const q = (sel) => Array.from(document.querySelectorAll(sel));
  const a = window.onemap.widgets[0].analysis;
  const list = document.querySelector(`[data-testid=onemap-analysis-points][data-input=${field}]`);
  const built = a.inputs();
  return {
    count: Number(list.dataset.count),
    listed: q(`[data-testid=onemap-analysis-point][data-input=${field}]`).map((li) => ({
      index: Number(li.dataset.index), lon: Number(li.dataset.lon), lat: Number(li.dataset.lat),
      remove: !!li.querySelector('[data-testid=onemap-analysis-point-remove]') })),
    markers: q(`[data-testid=onemap-analysis-point-marker][data-input=${field}]`).map((m) => m.textContent),
    adding: document.querySelector(`[data-testid=onemap-analysis-pick][data-input=${field}]`).dataset.active,
    button: document.querySelector(`[data-testid=onemap-analysis-pick][data-input=${field}]`).textContent,
    inputs: built.inputs || null,
  };
}, FIELD);

const shown = analysisShown;
/** Every result feature drawn in the view: its output, layer and a few properties. */
const rendered = (page) => analysisRendered(page, ['site', 'status', 'building_id']);

/** Click the map at [lon, lat] (zoom 19: a pixel is some 0.2 m) and wait for the list to grow. */
async function addPoint(page, lngLat) {
  const before = (await pointsShown(page)).count;
  await mapGoTo(page, lngLat, 19);
  const [x, y] = await mapPixel(page, lngLat);
  await page.mouse.click(x, y);
  await until(async () => (await pointsShown(page)).count === before + 1,
    `the click at ${lngLat} added no point`, 10000);
}

await main(async (browser) => {
  const dir = path.join(ARTIFACTS, 'widget-placement');
  mkdirSync(dir, { recursive: true });
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = watch(await context.newPage(), 'placement');
  const sent = [];
  const accepted = [];
  page.on('request', (r) => {
    if (r.method() === 'POST' && /\/processes\/refuse-placement\/execution/.test(r.url())) {
      sent.push({ body: r.postDataJSON(), prefer: r.headers().prefer || null });
    }
  });
  page.on('response', async (r) => {
    if (r.request().method() === 'POST' && /\/processes\/refuse-placement\/execution/.test(r.url())) {
      accepted.push({ status: r.status(), body: await r.json().catch(() => null) });
    }
  });
  const { community, corners } = PARAMS;
  await page.goto(`${BASE}/widget/?theme=refuse&lang=zh&center=${community.center[0]},`
    + `${community.center[1]}&zoom=16#key=${who.api_key}`);
  await page.waitForFunction(() => window.onemap && window.onemap.widgets.length, null, { timeout: 30000 });
  await page.evaluate(() => window.onemap.widgets[0].ready);

  // 分析 → refuse-placement: the form built from its description
  await page.getByTestId('onemap-analysis-toggle').click();
  await page.waitForSelector('[data-testid=onemap-analysis-process] option[value="refuse-placement"]',
    { state: 'attached', timeout: 30000 });
  await page.selectOption('[data-testid=onemap-analysis-process]', 'refuse-placement');
  await page.waitForSelector(`[data-testid=onemap-analysis-field][data-input=${FIELD}]`, { timeout: 30000 });
  const form = (await shown(page)).fields;

  // the area: a community from the list; p-median, add k = 1
  await page.selectOption('[data-testid=onemap-analysis-level]', 'community');
  await page.waitForSelector('[data-testid=onemap-analysis-unit][data-loading=false]', { timeout: 30000 });
  await page.selectOption('[data-testid=onemap-analysis-unit]', String(community.id));
  await page.selectOption('[data-testid=onemap-analysis-input][data-name=model]', 'p-median');
  await page.selectOption('[data-testid=onemap-analysis-input][data-name=mode]', 'add');
  await page.fill('[data-testid=onemap-analysis-input][data-name=k]', '1');
  const empty = await pointsShown(page);

  // 在地图上添加候选点: a stray point, then 清除全部
  await page.click(`[data-testid=onemap-analysis-pick][data-input=${FIELD}]`);
  const addingMode = await pointsShown(page);
  await addPoint(page, community.center);
  await page.click(`[data-testid=onemap-analysis-points-clear][data-input=${FIELD}]`);
  const cleared = await pointsShown(page);
  // the two street corners, and a third point removed with its own button
  await addPoint(page, corners[0]);
  await addPoint(page, corners[1]);
  await addPoint(page, community.center);
  const three = await pointsShown(page);
  await page.click(`[data-testid=onemap-analysis-point-remove][data-input=${FIELD}][data-index="3"]`);
  await page.click(`[data-testid=onemap-analysis-pick][data-input=${FIELD}]`);  // done adding
  const picked = await pointsShown(page);
  picked.popup = (await shown(page)).popup;
  await mapGoTo(page, community.center, 16);
  await page.screenshot({ path: path.join(dir, 'candidates.png') });

  // run: an async job, polled until it ends; its results drawn
  await page.getByTestId('onemap-analysis-run').click();
  await until(() => page.evaluate(() => {
    const a = window.onemap.widgets[0].analysis;
    if (a.error) return true;
    return a.job && a.job.status === 'successful' && a.results && a.results.jobId === a.job.id &&
      a.results.layers.length > 0;
  }), 'the placement run did not end', 150000);
  const done = await shown(page);
  check(!done.error, () => `refused: ${done.error}`);
  await until(() => page.evaluate(() => document.querySelectorAll(
    '[data-testid=onemap-analysis-legend-entry][data-output=sites]').length), 'no sites in the legend', 30000);
  const result = await shown(page);
  result.document = await page.evaluate(() => {
    const doc = window.onemap.widgets[0].analysis.results.document;
    const value = (id) => (doc[id] && doc[id].value !== undefined ? doc[id].value : doc[id]);
    return { summary: value('summary'),
      sites: value('sites').features.map((f) => ({ site: f.properties.site,
        status: f.properties.status, point: f.geometry.coordinates })),
      assignments: value('assignments').features.length };
  });
  result.rendered = await rendered(page);
  result.stage = await page.textContent('[data-testid=onemap-analysis-stage]');
  await page.screenshot({ path: path.join(dir, 'placement.png') });

  return { form, empty, adding_mode: addingMode, cleared, three, picked, sent, accepted, result };
});
