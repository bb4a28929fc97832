// The incident analysis (pipeline-incident) in the widget, as a duty officer would run it:
// the pipelines map opened with the district administrator's API key, 分析 opened,
// pipeline-incident chosen, the failed pipe picked by clicking it on the map, the plan run;
// the first valve it says to close clicked as stuck and the plan run again; then a
// lifeline sensor's popup and its 事故分析 button, run from there. PARAMS.segment (a water
// main: id, point on it) and PARAMS.sensor (id, point) come from the API
// (tests/web/test_widget_incident.py), which checks everything returned here against it.
// Screenshots: var/test-artifacts/widget-incident/.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { ARTIFACTS, BASE, PARAMS, USERS, analysisRendered, analysisShown, check, main, mapGoTo,
  mapPixel, until, watch } from './lib.mjs';

const who = USERS[PARAMS.user || 'admin'];

/** What the panel shows, read from the DOM. */
const shown = analysisShown;
/** Every result feature drawn in the view: its output, layer, properties and colour. */
const rendered = (page) => analysisRendered(page, ['valve_id', 'segment_id', 'action',
  'fallback']);

/** The features the form outlines on the map (picked for a feature or id-set input). */
const outlined = (page) => page.evaluate(async () => {
  const { map } = window.onemap.widgets[0];
  await new Promise((r) => { map.once('idle', r); map.triggerRepaint(); });
  const layers = ['onemap-analysis-input-feature-line', 'onemap-analysis-input-feature-point']
    .filter((id) => map.getLayer(id));
  return layers.length ? map.queryRenderedFeatures({ layers }).map((f) => ({ layer: f.layer.id,
    group: f.properties.group, id: f.properties.id })) : [];
});

async function runAndWait(page, what) {
  const before = await page.evaluate(() => {
    const a = window.onemap.widgets[0].analysis;
    return a.job ? a.job.id : null;
  });
  await page.getByTestId('onemap-analysis-run').click();
  await until(() => page.evaluate((old) => {
    const a = window.onemap.widgets[0].analysis;
    if (a.error) return true;
    return a.job && a.job.id !== old && a.job.status === 'successful' && a.results &&
      a.results.jobId === a.job.id && a.results.layers.length > 0;
  }, before), `${what}: the run did not end`, 90000);
  const state = await shown(page);
  check(!state.error, () => `${what}: refused: ${state.error}`);
  state.document = await page.evaluate(() => {
    const doc = window.onemap.widgets[0].analysis.results.document;
    const value = (id) => (doc[id] && doc[id].value !== undefined ? doc[id].value : doc[id]);
    return { summary: value('summary'), valves: value('valves').features.map((f) => ({
      valve_id: f.properties.valve_id, action: f.properties.action, ring: f.properties.ring,
      point: f.geometry.coordinates })) };
  });
  return state;
}

await main(async (browser) => {
  const dir = path.join(ARTIFACTS, 'widget-incident');
  mkdirSync(dir, { recursive: true });
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = watch(await context.newPage(), 'incident');
  const sent = [];
  page.on('request', (r) => {
    if (r.method() === 'POST' && /\/processes\/pipeline-incident\/execution/.test(r.url())) {
      sent.push(r.postDataJSON());
    }
  });
  const seg = PARAMS.segment;
  await page.goto(`${BASE}/widget/?theme=pipelines&lang=zh&center=${seg.point[0]},${seg.point[1]}`
    + `&zoom=17#key=${who.api_key}`);
  await page.waitForFunction(() => window.onemap && window.onemap.widgets.length, null, { timeout: 30000 });
  await page.evaluate(() => window.onemap.widgets[0].ready);

  // 分析 → pipeline-incident: the form built from its description
  await page.getByTestId('onemap-analysis-toggle').click();
  await page.waitForSelector('[data-testid=onemap-analysis-process] option[value="pipeline-incident"]',
    { state: 'attached', timeout: 30000 });
  await page.selectOption('[data-testid=onemap-analysis-process]', 'pipeline-incident');
  await page.waitForSelector('[data-testid=onemap-analysis-field][data-input=segment]', { timeout: 30000 });
  const form = (await shown(page)).fields;

  // the failed pipe: 在地图上选择 (管段), then a click on the pipe
  await mapGoTo(page, seg.point, 18);
  await page.click('[data-testid=onemap-analysis-pick][data-input=segment]');
  const [px, py] = await mapPixel(page, seg.point);
  await page.mouse.click(px, py);
  await page.waitForSelector('[data-testid=onemap-analysis-picked][data-input=segment][data-found=true]',
    { timeout: 30000 });
  const picked = await shown(page);
  picked.outlined = await outlined(page);
  await page.screenshot({ path: path.join(dir, 'picked.png') });

  // the plan as it stands
  const plain = await runAndWait(page, 'the plain plan');
  const first = plain.document.valves.find((v) => v.action === 'close');
  check(first, () => `the plain plan closes no valve: ${JSON.stringify(plain.document.valves)}`);

  // the first valve it closes is stuck: picked on the map, the plan run again
  await page.click('[data-testid=onemap-analysis-pick][data-input=stuck_valves]');
  await mapGoTo(page, first.point, 18);
  const [vx, vy] = await mapPixel(page, first.point);
  await page.mouse.click(vx, vy);
  await until(() => page.evaluate(() => document.querySelector(
    '[data-testid=onemap-analysis-ids][data-input=stuck_valves]').value), 'no valve picked', 10000);
  await page.click('[data-testid=onemap-analysis-pick][data-input=stuck_valves]');  // done picking
  const stuckPicked = await shown(page);
  stuckPicked.ids = await page.inputValue('[data-testid=onemap-analysis-ids][data-input=stuck_valves]');
  stuckPicked.outlined = await outlined(page);
  const fallback = await runAndWait(page, 'the plan with a stuck valve');
  await until(() => page.evaluate(() => document.querySelectorAll(
    '[data-testid=onemap-analysis-legend-entry][data-output=valves]').length), 'no valves in the legend', 30000);
  fallback.legend = (await shown(page)).legend;
  fallback.rendered = await rendered(page);
  await page.screenshot({ path: path.join(dir, 'fallback.png') });

  // a lifeline sensor's popup: 事故分析 opens the panel on pipeline-incident, filled in
  const sensor = PARAMS.sensor;
  await page.getByTestId('onemap-analysis-clear').click();
  await mapGoTo(page, sensor.point, 17);
  const [sx, sy] = await mapPixel(page, sensor.point);
  await page.mouse.click(sx, sy);
  await until(() => page.evaluate(() => {
    const s = window.onemap.widgets[0].popupState;
    return s && s.status !== null;
  }), 'no popup for the sensor', 30000);
  await page.screenshot({ path: path.join(dir, 'sensor-popup.png') });
  const opened = await page.evaluate(() => {
    const s = window.onemap.widgets[0].popupState;
    return { collection: s.collection, id: s.id, status: s.status,
      button: !!document.querySelector('[data-testid=onemap-popup-incident]') };
  });
  check(opened.collection === 'sensor' && opened.button,
    () => `the click on sensor ${sensor.id} opened ${JSON.stringify(opened)}`);
  const popup = await page.evaluate(() => ({
    title: document.querySelector('[data-testid=onemap-popup] h4').textContent,
    collection: window.onemap.widgets[0].popupState.collection,
    id: window.onemap.widgets[0].popupState.id,
    button: document.querySelector('[data-testid=onemap-popup-incident]').textContent,
    inputs: JSON.parse(document.querySelector('[data-testid=onemap-popup-incident]').dataset.inputs),
  }));
  await page.getByTestId('onemap-popup-incident').click();
  await until(() => page.evaluate(() => {
    const a = window.onemap.widgets[0].analysis;
    const x = document.querySelector(`[data-testid=onemap-analysis-input][data-name=x]`);
    return a.process && a.process.id === 'pipeline-incident' && x && x.value;
  }), 'the sensor did not fill the incident form', 30000);
  const fromSensor = await shown(page);
  fromSensor.popup_after = fromSensor.popup;
  const sensorRun = await runAndWait(page, 'the plan from a sensor');
  await page.screenshot({ path: path.join(dir, 'sensor.png') });

  return { form, picked, plain, first, stuck_picked: stuckPicked, fallback, popup,
    from_sensor: fromSensor, sensor_run: sensorRun, sent };
});
