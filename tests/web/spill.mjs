// Spill tracing (spill-trace) from a spill's popup: the trucks map opened with the
// district administrator's API key at a spill the S city's truth says a truck caused,
// the spill clicked, 遗撒溯源 pressed (the panel opens on spill-trace with the report
// filled in), run. Its suspects, tracks (track and gap pieces), sites and legend are
// returned for tests/web/test_widget_spill.py. Screenshots: var/test-artifacts/widget-spill/.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { ARTIFACTS, BASE, PARAMS, USERS, analysisRendered, analysisShown, check, main, mapGoTo,
  mapPixel, until, watch } from './lib.mjs';

const who = USERS[PARAMS.user || 'admin'];
const spill = PARAMS.spill;

await main(async (browser) => {
  const dir = path.join(ARTIFACTS, 'widget-spill');
  mkdirSync(dir, { recursive: true });
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = watch(await context.newPage(), 'spill');
  const sent = [];
  page.on('request', (r) => {
    if (r.method() === 'POST' && /\/processes\/spill-trace\/execution/.test(r.url())) {
      sent.push({ body: r.postDataJSON() });
    }
  });
  await page.goto(`${BASE}/widget/?theme=trucks&lang=zh&center=${spill.point[0]},`
    + `${spill.point[1]}&zoom=17#key=${who.api_key}`);
  await page.waitForFunction(() => window.onemap && window.onemap.widgets.length, null, { timeout: 30000 });
  await page.evaluate(() => window.onemap.widgets[0].ready);
  await mapGoTo(page, spill.point, 18);
  const [px, py] = await mapPixel(page, spill.point);
  await page.mouse.click(px, py);
  await until(() => page.evaluate(() => {
    const s = window.onemap.widgets[0].popupState;
    return s && s.status !== null && !!document.querySelector('[data-testid=onemap-popup-trace]');
  }), 'no popup with 遗撒溯源 for the spill', 30000);
  const popup = await page.evaluate(() => ({
    collection: window.onemap.widgets[0].popupState.collection,
    id: window.onemap.widgets[0].popupState.id,
    button: document.querySelector('[data-testid=onemap-popup-trace]').textContent,
    inputs: JSON.parse(document.querySelector('[data-testid=onemap-popup-trace]').dataset.inputs),
  }));
  await page.screenshot({ path: path.join(dir, 'popup.png') });
  await page.getByTestId('onemap-popup-trace').click();
  await until(() => page.evaluate(() => {
    const a = window.onemap.widgets[0].analysis;
    return a && a.process && a.process.id === 'spill-trace';
  }), 'the popup did not open spill-trace', 30000);
  const form = (await analysisShown(page)).fields;
  await page.getByTestId('onemap-analysis-run').click();
  await until(() => page.evaluate(() => {
    const a = window.onemap.widgets[0].analysis;
    if (a.error) return true;
    return a.results && a.results.layers.length > 0;
  }), 'the trace did not end', 120000);
  const done = await analysisShown(page);
  check(!done.error, () => `refused: ${done.error}`);
  await until(() => page.evaluate(() => document.querySelectorAll(
    '[data-testid=onemap-analysis-legend-entry][data-output=suspects]').length),
  'no suspects in the legend', 30000);
  const result = await analysisShown(page);
  result.document = await page.evaluate(() => {
    const doc = window.onemap.widgets[0].analysis.results.document;
    const value = (id) => (doc[id] && doc[id].value !== undefined ? doc[id].value : doc[id]);
    return { summary: value('summary'),
      suspects: value('suspects').features.map((f) => f.properties),
      tracks: value('tracks').features.map((f) => f.properties.kind),
      sites: value('sites').features.length };
  });
  result.rendered = await analysisRendered(page, ['rank', 'truck_id', 'kind', 'role']);
  await page.screenshot({ path: path.join(dir, 'suspects.png') });
  return { popup, form, sent, result };
});
