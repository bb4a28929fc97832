// Refuse flows (refuse-flow) from the widget's analysis panel: the refuse map opened with
// the district administrator's API key, 分析 opened, refuse-flow chosen, the warning
// threshold set to PARAMS.ratio, run. Its flows (lines sized by tonnes), facilities
// (warnings drawn apart), legend and summary are returned for
// tests/web/test_widget_flow.py to check against the API. Screenshot:
// var/test-artifacts/widget-flow/flow.png.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { ARTIFACTS, BASE, PARAMS, USERS, analysisRendered, analysisShown, check, main, until,
  watch } from './lib.mjs';

const who = USERS[PARAMS.user || 'admin'];

const shown = analysisShown;
const rendered = (page) => analysisRendered(page, ['facility_id', 'warning', 'from_id',
  'to_id', 'tonnes']);

await main(async (browser) => {
  const dir = path.join(ARTIFACTS, 'widget-flow');
  mkdirSync(dir, { recursive: true });
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = watch(await context.newPage(), 'flow');
  const sent = [];
  page.on('request', (r) => {
    if (r.method() === 'POST' && /\/processes\/refuse-flow\/execution/.test(r.url())) {
      sent.push({ body: r.postDataJSON(), prefer: r.headers().prefer || null });
    }
  });
  await page.goto(`${BASE}/widget/?theme=refuse&lang=zh&center=${PARAMS.center[0]},`
    + `${PARAMS.center[1]}&zoom=13#key=${who.api_key}`);
  await page.waitForFunction(() => window.onemap && window.onemap.widgets.length, null, { timeout: 30000 });
  await page.evaluate(() => window.onemap.widgets[0].ready);
  await page.getByTestId('onemap-analysis-toggle').click();
  await page.waitForSelector('[data-testid=onemap-analysis-process] option[value="refuse-flow"]',
    { state: 'attached', timeout: 30000 });
  await page.selectOption('[data-testid=onemap-analysis-process]', 'refuse-flow');
  await page.waitForSelector('[data-testid=onemap-analysis-input][data-name=warning_ratio]', { timeout: 30000 });
  const form = (await shown(page)).fields;
  await page.fill('[data-testid=onemap-analysis-input][data-name=warning_ratio]', String(PARAMS.ratio));
  await page.getByTestId('onemap-analysis-run').click();
  await until(() => page.evaluate(() => {
    const a = window.onemap.widgets[0].analysis;
    if (a.error) return true;
    return a.results && a.results.layers.length > 0;
  }), 'the flow run did not end', 120000);
  const done = await shown(page);
  check(!done.error, () => `refused: ${done.error}`);
  await until(() => page.evaluate(() => document.querySelectorAll(
    '[data-testid=onemap-analysis-legend-entry][data-output=facilities]').length),
  'no facilities in the legend', 30000);
  const result = await shown(page);
  result.document = await page.evaluate(() => {
    const doc = window.onemap.widgets[0].analysis.results.document;
    const value = (id) => (doc[id] && doc[id].value !== undefined ? doc[id].value : doc[id]);
    return { summary: value('summary'), flows: value('flows').features.length,
      facilities: value('facilities').features.map((f) => ({ id: f.properties.facility_id,
        warning: f.properties.warning })) };
  });
  result.rendered = await rendered(page);
  await page.screenshot({ path: path.join(dir, 'flow.png') });
  return { form, sent, result };
});
