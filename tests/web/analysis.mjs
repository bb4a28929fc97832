// The widget's analysis panel (分析), driven as a person would: the iframe page opened with
// no credential, signed in with its 登录 button (PARAMS.user), the panel opened, the
// processes listed, grid-statistics run on a community chosen from the form's list and
// on a polygon drawn on the map, locate run on a point picked on the map, a point
// outside the city refused with the server's message, and the list in English.
// Everything the panel showed is returned; tests/web/test_widget_analysis.py checks it
// against the API. Screenshots: var/test-artifacts/widget-analysis/.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { ARTIFACTS, BASE, CITY, PARAMS, USERS, check, main, mapPixel, until, watch } from './lib.mjs';

const who = USERS[PARAMS.user || 'admin'];
const W = 'window.onemap.widgets[0]';

/** The panel's state in the page: what it shows, read from the DOM. */
const shown = (page) => page.evaluate(() => {
  const q = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const w = window.onemap.widgets[0];
  const a = w.analysis;
  return {
    processes: q('[data-testid=onemap-analysis-process] option').filter((o) => o.value)
      .map((o) => ({ id: o.value, title: o.textContent })),
    fields: q('[data-testid=onemap-analysis-field]').map((f) => ({ input: f.dataset.input,
      kind: f.dataset.kind, invalid: f.dataset.invalid === 'true', text: f.innerText })),
    error: (document.querySelector('[data-testid=onemap-analysis-error]') || {}).textContent || '',
    summary: q('[data-testid=onemap-analysis-summary] tr').map((r) => ({ key: r.dataset.key,
      label: r.cells[0].textContent, value: r.cells[1].textContent })),
    legend: q('[data-testid=onemap-analysis-legend-entry]').map((e) => ({ output: e.dataset.output,
      layer: e.dataset.layer, text: e.textContent })),
    job: a && a.job ? { id: a.job.id, status: a.job.status, progress: a.job.progress,
      log: a.job.log } : null,
    resultLayers: a && a.results ? a.results.layers.map((l) => ({ output: l.output,
      sources: l.sources, layers: l.layers, count: l.count })) : [],
  };
});

/** Features drawn by the result layers in the current view, once the map is idle. */
const rendered = (page) => page.evaluate(async () => {
  const w = window.onemap.widgets[0];
  const { map } = w;
  await new Promise((r) => { map.once('idle', r); map.triggerRepaint(); });
  const layers = (w.analysis.results ? w.analysis.results.layers : []).flatMap((l) => l.layers);
  const present = layers.filter((id) => map.getLayer(id));
  const feats = present.length ? map.queryRenderedFeatures({ layers: present }) : [];
  return { layers: present, count: feats.length,
    units: [...new Set(feats.map((f) => f.properties.unit_id))].filter((u) => u != null),
    levels: [...new Set(feats.map((f) => f.properties.level))],
    sources: Object.keys(map.getStyle().sources).filter((s) => s.startsWith('onemap-analysis')) };
});

/** Record every state the progress element shows (the job may end within one poll). */
const recordProgress = (page) => page.evaluate(() => {
  window.__progress = [];
  const box = document.querySelector('[data-testid=onemap-analysis-progress]');
  const note = () => {
    const status = box.getAttribute('data-status');
    const last = window.__progress[window.__progress.length - 1];
    const entry = { status, progress: Number(box.getAttribute('data-progress')),
      text: box.innerText.trim(), bar: !!box.querySelector('progress') };
    if (status && (!last || last.text !== entry.text)) window.__progress.push(entry);
  };
  if (window.__observer) window.__observer.disconnect();
  window.__observer = new MutationObserver(note);
  window.__observer.observe(box, { childList: true, subtree: true, attributes: true });
});

async function runAndWait(page, what) {
  await recordProgress(page);
  await page.getByTestId('onemap-analysis-run').click();
  await until(() => page.evaluate(() => {
    const a = window.onemap.widgets[0].analysis;
    return (a.job && ['successful', 'failed', 'dismissed'].includes(a.job.status) &&
      a.results) || a.error;
  }), `${what}: the run did not end`, 60000);
  const state = await shown(page);
  check(!state.error, () => `${what}: refused: ${state.error}`);
  check(state.job && state.job.status === 'successful', () => `${what}: job ${JSON.stringify(state.job)}`);
  state.progress = await page.evaluate(() => window.__progress);
  return state;
}

await main(async (browser) => {
  const dir = path.join(ARTIFACTS, 'widget-analysis');
  mkdirSync(dir, { recursive: true });
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = watch(await context.newPage(), 'analysis');
  const [lon, lat] = CITY.grid.point;
  await page.goto(`${BASE}/widget/?theme=grid_management&lang=zh&center=${lon},${lat}&zoom=14`);
  await page.waitForFunction(() => window.onemap && window.onemap.ready, null, { timeout: 30000 });
  await page.evaluate(() => window.onemap.ready);

  // sign in with the widget's own button and form
  await page.getByTestId('onemap-signin').click();
  await page.getByTestId('onemap-auth-username').fill(who.username);
  await page.getByTestId('onemap-auth-password').fill(who.password);
  await page.getByTestId('onemap-auth-submit').click();
  await until(() => page.evaluate(() => !!window.onemap.widgets[0].token && !document
    .querySelector('[data-testid=onemap-auth]')), 'the sign-in did not succeed');
  const token = await page.evaluate(() => window.onemap.widgets[0].token);

  // the panel and its list of processes
  const button = (await page.getByTestId('onemap-analysis-toggle').textContent()).trim();
  await page.getByTestId('onemap-analysis-toggle').click();
  await page.waitForSelector('[data-testid=onemap-analysis-process] option[value="grid-statistics"]',
    { state: 'attached', timeout: 30000 });
  const listed = (await shown(page)).processes;

  // grid-statistics on a community chosen from the form's list
  await page.selectOption('[data-testid=onemap-analysis-process]', 'grid-statistics');
  await page.waitForSelector('[data-testid=onemap-analysis-field][data-input=area]', { timeout: 30000 });
  const form = (await shown(page)).fields;
  await page.selectOption('[data-testid=onemap-analysis-level]', 'community');
  await page.waitForSelector('[data-testid=onemap-analysis-unit][data-loading=false]', { timeout: 30000 });
  const unitOptions = await page.$$eval('[data-testid=onemap-analysis-unit] option',
    (os) => os.filter((o) => o.value).map((o) => ({ id: Number(o.value), name: o.textContent })));
  await page.selectOption('[data-testid=onemap-analysis-unit]', String(CITY.grid.community_id));
  await page.selectOption('[data-testid=onemap-analysis-input][data-name=depth]', 'grid');
  const byUnit = await runAndWait(page, 'grid-statistics of a community');
  await until(() => page.evaluate(() => document
    .querySelectorAll('[data-testid=onemap-analysis-legend-entry]').length), 'no legend entry', 30000);
  byUnit.legend = (await shown(page)).legend;
  byUnit.rendered = await rendered(page);
  await page.screenshot({ path: path.join(dir, 'grid-statistics.png') });

  // the same process on a polygon drawn on the map: three clicks and a double-click
  await page.evaluate(([ll]) => window.onemap.widgets[0].map.jumpTo({ center: ll, zoom: 15 }), [[lon, lat]]);
  await page.selectOption('[data-testid=onemap-analysis-area-mode]', 'polygon');
  await page.getByTestId('onemap-analysis-draw').click();
  const [cx, cy] = await mapPixel(page, [lon, lat]);
  for (const [dx, dy] of [[-150, -110], [150, -110], [150, 110]]) {
    await page.mouse.click(cx + dx, cy + dy);
    await page.waitForTimeout(350);  // apart: not a double-click
  }
  await page.mouse.dblclick(cx - 150, cy + 110);
  const drawn = await until(() => page.evaluate(() => {
    const v = document.querySelector('[data-testid=onemap-analysis-vertices]');
    return v && v.dataset.closed === 'true' && Number(v.dataset.count);
  }), 'the polygon was not closed by the double-click', 10000);
  const byPolygon = await runAndWait(page, 'grid-statistics of a drawn polygon');
  byPolygon.vertices = drawn;
  byPolygon.inputs = await page.evaluate(() => window.onemap.widgets[0].analysis.inputs().inputs);
  byPolygon.rendered = await rendered(page);
  await page.screenshot({ path: path.join(dir, 'grid-statistics-polygon.png') });
  // clearing the results takes their layers off the map
  await page.getByTestId('onemap-analysis-clear').click();
  byPolygon.after_clear = await rendered(page);

  // cancel: the job's status is held at "running" in the page (a job of the S city ends
  // within one poll); the panel's DELETE goes to the server
  let hold = true;
  await page.route(/\/jobs\/[^/?]+\?f=json$/, async (route) => {
    if (!hold || route.request().method() !== 'GET') return route.continue();
    const response = await route.fetch();
    const json = await response.json();
    if (json.status !== 'dismissed') {
      Object.assign(json, { status: 'running', progress: 50, message: 'counting / 统计中 (1/2)' });
    }
    return route.fulfill({ response, json });
  });
  await recordProgress(page);
  await page.getByTestId('onemap-analysis-run').click();
  await page.waitForSelector('[data-testid=onemap-analysis-progress][data-status=running]', { timeout: 30000 });
  await page.getByTestId('onemap-analysis-cancel').click();
  await page.waitForSelector('[data-testid=onemap-analysis-progress][data-status=dismissed]', { timeout: 30000 });
  hold = false;
  const cancelled = await shown(page);
  cancelled.progress = await page.evaluate(() => window.__progress);
  cancelled.cancel_visible = await page.getByTestId('onemap-analysis-cancel').isVisible();
  cancelled.rendered = await rendered(page);
  await page.unroute(/\/jobs\/[^/?]+\?f=json$/);

  // locate: a point picked on the map
  await page.selectOption('[data-testid=onemap-analysis-process]', 'locate');
  await page.waitForSelector('[data-testid=onemap-analysis-field][data-input=point]', { timeout: 30000 });
  await page.evaluate(([ll]) => window.onemap.widgets[0].map.jumpTo({ center: ll, zoom: 16 }), [[lon, lat]]);
  await page.getByTestId('onemap-analysis-pick').click();
  const [px, py] = await mapPixel(page, [lon, lat]);
  await page.mouse.click(px, py);
  const picked = await page.evaluate(() => Object.fromEntries(Array.from(document.querySelectorAll(
    '[data-testid=onemap-analysis-field][data-input=point] input')).map((i) => [i.name, i.value])));
  const popup = await page.evaluate(() => !!window.onemap.widgets[0].popupState);
  const located = await runAndWait(page, 'locate');
  located.picked = picked;
  located.popup_opened = popup;
  located.after_run = await rendered(page);
  await page.screenshot({ path: path.join(dir, 'locate.png') });

  // a point outside the city, typed: the server's message next to the form
  await page.fill('[data-testid=onemap-analysis-input][data-name=x]', '1');
  await page.fill('[data-testid=onemap-analysis-input][data-name=y]', '2');
  await page.getByTestId('onemap-analysis-run').click();
  await until(() => page.evaluate(() => document.querySelector('[data-testid=onemap-analysis-error]')
    .textContent), 'no error shown for a point outside the city', 30000);
  const refused = await shown(page);
  await page.screenshot({ path: path.join(dir, 'refused.png') });

  // English: the list and the labels follow the widget's language
  await page.getByTestId('onemap-lang-toggle').click();
  await until(() => page.evaluate(() => {
    const o = document.querySelector('[data-testid=onemap-analysis-process] option[value=locate]');
    return o && !/[\u4e00-\u9fff]/.test(o.textContent);
  }), 'the process list did not turn English', 30000);
  const english = await shown(page);
  english.button = (await page.getByTestId('onemap-analysis-toggle').textContent()).trim();

  return { token, button, listed, form, unit_options: unitOptions, by_unit: byUnit,
    by_polygon: byPolygon, cancelled, located, refused, english };
});
