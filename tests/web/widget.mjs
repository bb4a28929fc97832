// The staff-console widget embedded in plain host pages of another origin.
//
// PARAMS.hosts: {worker, other_worker, analyst, external}: host pages (one <script>, one
// <div>) served from a temporary directory, each with that user's token (the external
// system: its API key). The worker of the
// grid loads the widget, toggles a layer off and on in the layer switcher, and drills
// grid → compound → building → unit → household by clicking the panel's items, and
// sees the household's residents by name; the worker of another grid opens the same
// household and grid and sees no resident's name anywhere on the page; neither do the
// analyst (masked names) and an external system embedding with an API key.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { ARTIFACTS, CITY, PARAMS, check, main, watch } from './lib.mjs';

const H = CITY.household;

async function open(browser, url, label) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = watch(await context.newPage(), label);
  await page.goto(url);
  await page.waitForFunction(() => window.onemap && window.onemap.ready, null, { timeout: 30000 });
  await page.evaluate(async () => {
    await window.onemap.ready;
    const { map } = window.onemap.widgets[0];
    if (!map.loaded()) await new Promise((r) => map.once('idle', r));
  });
  return page;
}

/** Click the drill-down item of `level` and `id`; wait for the panel to load there. */
async function clickDown(page, level, id) {
  const item = page.locator(`[data-testid=onemap-drill-item][data-level=${level}][data-id="${id}"]`);
  check(await item.count() === 1, () => `no ${level} ${id} in the drill-down list`);
  await item.click();
  return panel(page, level, id);
}

async function panel(page, level, id) {
  await page.waitForFunction(([l, i]) => {
    const p = window.onemap.widgets[0].panel;
    return p && p.level === l && p.id === i && !p.loading;
  }, [level, id], { timeout: 30000 });
  return page.evaluate(() => {
    const p = window.onemap.widgets[0].panel;
    return { level: p.level, id: p.id, name: p.name, status: p.status, denied: p.denied,
      childLevel: p.childLevel, childCount: p.childCount,
      children: p.children.map((c) => ({ id: c.id, name: c.name })) };
  });
}

const residentNamesOn = (page) => page.evaluate((names) => {
  const text = document.body.innerText;
  return names.filter((n) => text.includes(n));
}, CITY.resident_names);

await main(async (browser) => {
  const dir = path.join(ARTIFACTS, 'widget');
  mkdirSync(dir, { recursive: true });

  // --- the grid's worker ---------------------------------------------------------
  const page = await open(browser, PARAMS.hosts.worker, 'worker');
  check(new URL(page.url()).origin !== new URL(process.env.BASE_URL).origin,
    'the host page must not come from onemap');
  // a layer off and on through the layer switcher
  const toggle = page.getByTestId('onemap-layer-toggle').first();
  const group = await toggle.getAttribute('data-layer');
  const layerIds = await page.evaluate(() => window.onemap.widgets[0].map.getStyle().layers
    .map((l) => l.id));
  const visible = () => page.evaluate((ids) => {
    const { map } = window.onemap.widgets[0];
    return ids.filter((id) => map.getLayoutProperty(id, 'visibility') !== 'none').length;
  }, layerIds);
  const before = await visible();
  // (reported, not checked here, so that the drill-down is tested whatever happens)
  const box = () => page.locator(`[data-testid=onemap-layer-toggle][data-layer="${group}"]`);
  const checkedBefore = await box().isChecked();
  await box().click();
  const hidden = await visible();
  const groupLayers = await page.evaluate((g) => {
    const w = window.onemap.widgets[0];
    return w.map.getStyle().layers.filter((l) => (l['source-layer'] || l.id) === g && l.source)
      .map((l) => [l.id, w.map.getLayoutProperty(l.id, 'visibility') || 'visible']);
  }, group);
  const checkedOff = await box().isChecked();
  await box().click();
  const toggled = { group, before, hidden, restored: await visible(), checked_before: checkedBefore,
    checked_after_off: checkedOff, checked_after_on: await box().isChecked(),
    group_layers_after_off: groupLayers };

  // drill-down by clicking, grid → household
  await page.evaluate((id) => window.onemap.widgets[0].drill('grid', id), CITY.grid.id);
  const grid = await panel(page, 'grid', CITY.grid.id);
  check(!grid.denied && grid.name, `the worker may not open grid ${CITY.grid.id}`);
  await clickDown(page, 'compound', H.compound_id);
  await clickDown(page, 'building', H.building_id);
  await clickDown(page, 'unit', H.unit_id);
  const household = await clickDown(page, 'household', H.id);
  const named = household.children.filter((c) => c.name);
  check(household.childLevel === 'resident' && named.length === CITY.resident_names.length,
    () => `household ${H.id} lists ${JSON.stringify(household.children)}`);
  const shown = await residentNamesOn(page);
  check(shown.length === CITY.resident_names.length,
    `the panel shows ${shown.length} of ${CITY.resident_names.length} residents' names`);
  const stats = await page.getByTestId('onemap-drill-stats').count();
  await page.screenshot({ path: path.join(dir, 'worker-household.png') });

  // every layer named in the chosen language: the labels the widget shows, in zh and en
  const labels = {};
  for (const lang of ['zh', 'en']) {
    labels[lang] = await page.evaluate(async ([l, buildingId]) => {
      const w = window.onemap.widgets[0];
      w.setLang(l);
      await w.loadTitles(l);
      await w.viewStats();
      await w.showRecord('building', buildingId, w.map.getCenter().toArray());
      const rows = (testid) => Array.from(w.root.querySelectorAll(`[data-testid=${testid}] tr`))
        .map((tr) => ({ key: tr.getAttribute('data-layer') || tr.getAttribute('data-stat'),
          label: tr.cells[0].textContent }));
      const text = (sel) => Array.from(w.root.querySelectorAll(sel)).map((e) => e.textContent.trim());
      return { view_rows: rows('onemap-view-rendered'), stat_rows: rows('onemap-drill-stats'),
        switcher: text('[data-testid=onemap-layer-switcher] label'),
        legend: text('[data-testid=onemap-legend-entry]'),
        time: text('[data-testid=onemap-time] h4'), popup: text('[data-testid=onemap-popup] h4') };
    }, [lang, H.building_id]);
  }
  await page.evaluate(() => window.onemap.widgets[0].setLang('zh'));

  // a click on the household's point → its record's popup, rows labelled by the
  // collection's property titles (queryables), coded values by their labels, in zh and
  // then, after the toggle, in en
  const spot = await page.evaluate(async (point) => {
    const w = window.onemap.widgets[0];
    if (w.popup) w.popup.remove();
    w.map.jumpTo({ center: point, zoom: 18 });
    await new Promise((r) => w.map.once('idle', r));
    const p = w.map.project(point);
    const box = w.map.getCanvas().getBoundingClientRect();
    const x = box.left + p.x;
    const y = box.top + p.y;
    return { x, y, on_canvas: document.elementFromPoint(x, y) === w.map.getCanvas() };
  }, H.point);
  check(spot.on_canvas, () => `the household's point is covered: ${JSON.stringify(spot)}`);
  await page.mouse.click(spot.x, spot.y);
  await page.waitForFunction(() => {
    const w = window.onemap.widgets[0];
    const s = w.popupState;
    return s && s.status !== null && (w.fieldTitles.zh || {})[s.collection];
  }, null, { timeout: 30000 });
  const popupRows = () => page.evaluate(() => {
    const w = window.onemap.widgets[0];
    return { collection: w.popupState.collection, status: w.popupState.status,
      rows: Array.from(w.root.ownerDocument.querySelectorAll('[data-testid=onemap-popup] tr'))
        .map((tr) => ({ field: tr.getAttribute('data-field'), label: tr.cells[0].textContent,
          value: tr.cells[1].textContent,
          code: tr.cells[1].firstElementChild && tr.cells[1].firstElementChild.getAttribute('title') })) };
  });
  const popup = { zh: await popupRows() };
  await page.evaluate(async () => {
    const w = window.onemap.widgets[0];
    w.setLang('en');
    await w.loadFieldTitles(w.popupState.collection, 'en');
  });
  popup.en = await popupRows();
  await page.screenshot({ path: path.join(dir, 'worker-popup-en.png') });
  await page.evaluate(() => window.onemap.widgets[0].setLang('zh'));

  // --- the worker of another grid --------------------------------------------------
  const other = await open(browser, PARAMS.hosts.other_worker, 'other_worker');
  await other.evaluate((id) => window.onemap.widgets[0].drill('household', id), H.id);
  const foreign = await panel(other, 'household', H.id);
  const foreignNamed = foreign.children.filter((c) => c.name);
  check(foreignNamed.length === 0, () => `another grid's worker sees residents ${
    JSON.stringify(foreignNamed)}`);
  check((await residentNamesOn(other)).length === 0, 'a resident name is on the other worker page');
  await other.evaluate((id) => window.onemap.widgets[0].drill('grid', id), CITY.grid.id);
  const foreignGrid = await panel(other, 'grid', CITY.grid.id);
  check((await residentNamesOn(other)).length === 0, 'a resident name is on the other worker page');
  await other.screenshot({ path: path.join(dir, 'other-worker-household.png') });

  // --- the analyst (token) and an external system (API key): no names either ------
  const masked = {};
  for (const who of ['analyst', 'external']) {
    const p = await open(browser, PARAMS.hosts[who], who);
    await p.evaluate((id) => window.onemap.widgets[0].drill('household', id), H.id);
    masked[who] = await panel(p, 'household', H.id);
    masked[who].names_on_page = await residentNamesOn(p);
    masked[who].rendered = await p.evaluate(() =>
      window.onemap.widgets[0].map.queryRenderedFeatures().length);
    await p.context().close();
  }

  return { toggled, masked, grid, household, stats_tables: stats, labels, popup,
    foreign, foreign_grid: foreignGrid };
});
