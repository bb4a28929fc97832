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
import { ARTIFACTS, BASE, CITY, PARAMS, USERS, check, main, until, watch } from './lib.mjs';

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
  // the open events' switch leaves the history hidden; the history has a switch of its own
  const vis = (id) => page.evaluate((i) => window.onemap.widgets[0].map
    .getLayoutProperty(i, 'visibility') || 'visible', id);
  const eventBox = page.locator('[data-testid=onemap-layer-toggle][data-layer="event"]');
  const historyId = 'grid_management-event-history';
  const historyBox = page.locator(`[data-testid=onemap-layer-toggle][data-layer="${historyId}"]`);
  const history = { event_switch: await eventBox.count(), history_switch: await historyBox.count() };
  if (history.event_switch && history.history_switch) {
    history.checked_at_start = await historyBox.isChecked();
    await eventBox.click();
    await eventBox.click();
    history.after_events_off_on = await vis(historyId);
    await historyBox.click();
    history.after_its_switch = await vis(historyId);
    history.label = (await historyBox.locator('xpath=..').innerText()).trim();
    await historyBox.click();
  }

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
      // the building's popup: its figures once grid-statistics has answered
      for (let i = 0; i < 100 && !(w.popupState && w.popupState.figures); i += 1) {
        await new Promise((r) => setTimeout(r, 100));
      }
      const popupFields = Array.from(document.querySelectorAll('[data-testid=onemap-popup] tr'))
        .map((tr) => tr.getAttribute('data-field'));
      const figures = Array.from(document.querySelectorAll(
        '[data-testid=onemap-popup-figures] [data-stat]')).map((d) => d.getAttribute('data-stat'));
      return { view_rows: rows('onemap-view-rendered'), stat_rows: rows('onemap-drill-stats'),
        popup_fields: popupFields, popup_figures: figures,
        popup_state_figures: w.popupState && w.popupState.figures,
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
  // parents by name: wait until the household's building and unit have theirs
  await page.waitForFunction(() => {
    const s = window.onemap.widgets[0].popupState;
    const internal = ['worker_user_id', 'reporter_user_id', 'assignee_user_id'];
    return s && s.properties && Object.keys(s.properties).filter((k) => /_id$/.test(k)
      && s.properties[k] != null && !internal.includes(k)).every((k) => k in s.names);
  }, null, { timeout: 30000 });
  const popup = { zh: await popupRows() };
  await page.evaluate(async () => {
    const w = window.onemap.widgets[0];
    w.setLang('en');
    await w.loadFieldTitles(w.popupState.collection, 'en');
  });
  popup.en = await popupRows();
  await page.screenshot({ path: path.join(dir, 'worker-popup-en.png') });
  await page.evaluate(() => window.onemap.widgets[0].setLang('zh'));

  // drill-down from the popup: a breadcrumb up to the street office, the map moved to
  // the unit and the unit outlined
  await page.evaluate(async ([id, point]) => {
    const w = window.onemap.widgets[0];
    await w.showRecord('household', id, point);
    w.map.jumpTo({ center: [point[0] + 0.5, point[1] + 0.5], zoom: 9 });
  }, [H.id, H.point]);
  // (the popup is off screen now: its button clicked in the page)
  await page.evaluate(() => document.querySelector('[data-testid=onemap-popup-drill]').click());
  const fromPopup = await panel(page, 'household', H.id);
  await page.waitForFunction(() => {
    const p = window.onemap.widgets[0].panel;
    return p.path.length >= 4;
  }, null, { timeout: 30000 }).catch(() => {});
  fromPopup.focus = await page.evaluate(async () => {
    const w = window.onemap.widgets[0];
    if (w.map.isMoving()) await new Promise((r) => w.map.once('moveend', r));
    const c = w.map.getCenter();
    const crumbs = Array.from(w.root.querySelectorAll('[data-testid=onemap-drill-path] span'))
      .map((e) => e.textContent);
    return { center: [c.lng, c.lat], zoom: w.map.getZoom(),
      highlighted: !!w.highlighted && !!w.map.getSource('onemap-highlight'),
      path: w.panel.path.map((p) => ({ level: p.level, id: p.id, name: p.name })), crumbs };
  });
  // the picture of web/widget/screenshot.png: the household drilled into from its
  // popup (breadcrumb, outline), and its building's popup with its figures, in zh
  await page.evaluate(async ([buildingId, point]) => {
    const w = window.onemap.widgets[0];
    if (w.map.isMoving()) await new Promise((r) => w.map.once('moveend', r));
    await w.showRecord('building', buildingId, point);
    for (let i = 0; i < 100 && !(w.popupState && w.popupState.figures); i += 1) {
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => { w.map.once('idle', r); w.map.triggerRepaint(); });
  }, [H.building_id, H.point]);
  await page.screenshot({ path: path.join(dir, 'widget-zh.png') });

  // a click on the map outside features: the units the place is in, each a way in
  const place = await page.evaluate(async (point) => {
    const w = window.onemap.widgets[0];
    const s = await w.showPlace(point);
    const units = Array.from(document.querySelectorAll('[data-testid=onemap-popup-unit]'))
      .map((e) => ({ level: e.getAttribute('data-level'), id: Number(e.getAttribute('data-id')),
        text: e.textContent }));
    return { here: s.here, units };
  }, CITY.grid.point);
  if (place.units.length) {
    const so = page.locator('[data-testid=onemap-popup-unit][data-level=street_office]');
    if (await so.count()) {
      await so.evaluate((e) => e.click());  // the popup may sit off screen
      place.street_office_panel = await panel(page, 'street_office', place.units[0].id)
        .catch(async (e) => {
          const p = await page.evaluate(() => JSON.stringify(window.onemap.widgets[0].panel));
          throw new Error(`street office panel: ${p} ${e}`);
        });
    }
  }

  // view statistics: each feature once, and a layer switched off leaves them
  const counted = await page.evaluate(async (point) => {
    const w = window.onemap.widgets[0];
    if (w.popup) w.popup.remove();
    w.map.jumpTo({ center: point, zoom: 16 });
    await new Promise((r) => w.map.once('idle', r));
    const state = await w.viewStats();
    const ids = {};
    w.map.queryRenderedFeatures().forEach((f) => {
      if (f.source === 'onemap-highlight' || !f.sourceLayer || f.id == null) return;
      if (f.properties && 'count' in f.properties) return;
      (ids[f.sourceLayer] = ids[f.sourceLayer] || new Set()).add(`${f.source}|${f.id}`);
    });
    const distinct = {};
    Object.keys(ids).forEach((k) => { distinct[k] = ids[k].size; });
    const group = Object.keys(distinct)[0];
    const layers = w.map.getStyle().layers.filter((l) => l['source-layer'] === group).map((l) => l.id);
    layers.forEach((id) => w.setLayerVisible(id, false));
    await new Promise((r) => setTimeout(r, 300));
    if (!w.map.loaded()) await new Promise((r) => w.map.once('idle', r));
    const after = await w.viewStats();
    layers.forEach((id) => w.setLayerVisible(id, true));
    // the rows the panel shows after a toggle, without calling viewStats
    await new Promise((r) => setTimeout(r, 1000));
    await new Promise((r) => { w.map.once('idle', r); w.map.triggerRepaint(); });
    await new Promise((r) => setTimeout(r, 500));
    const shown = Array.from(w.root.querySelectorAll('[data-testid=onemap-view-rendered] tr'))
      .map((tr) => tr.getAttribute('data-layer'));
    return { rendered: state.rendered, distinct, group, after_off: after.rendered, shown_after_on: shown };
  }, CITY.grid.point);

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

  // --- a token that was never issued (or has expired): a message, a sign-in form ----
  const expired = watch(await (await browser.newContext({ viewport: { width: 1280, height: 800 } }))
    .newPage(), 'expired');
  await expired.goto(PARAMS.hosts.expired);
  await expired.getByTestId('onemap-auth').waitFor({ timeout: 30000 });
  const auth = { message: await expired.getByTestId('onemap-auth-message').textContent(),
    events: await expired.evaluate(() => window.onemapEvents) };
  await expired.screenshot({ path: path.join(dir, 'expired-sign-in.png') });
  const worker = USERS.worker;
  await expired.getByTestId('onemap-auth-username').fill(worker.username);
  await expired.getByTestId('onemap-auth-password').fill('not the password');
  await expired.getByTestId('onemap-auth-submit').click();
  await expired.waitForFunction(() => {
    const e = document.querySelector('[data-testid=onemap-auth-error]');
    return e && e.textContent && !/…/.test(e.textContent);
  }, null, { timeout: 30000 });
  auth.wrong_password = await expired.getByTestId('onemap-auth-error').textContent();
  await expired.getByTestId('onemap-auth-password').fill(worker.password);
  await expired.getByTestId('onemap-auth-submit').click();
  await expired.evaluate(async () => {
    await window.onemap.ready;
    const { map } = window.onemap.widgets[0];
    if (!map.loaded()) await new Promise((r) => map.once('idle', r));
  });
  auth.after_sign_in = await expired.evaluate(() => {
    const w = window.onemap.widgets[0];
    return { overlay: !!document.querySelector('[data-testid=onemap-auth]'),
      rendered: w.map.queryRenderedFeatures().length, has_token: /^om_/.test(w.token),
      events: window.onemapEvents.map((e) => e.type) };
  });
  // the token refreshed before it expires: a new one; the old one works a minute more
  auth.refresh = await expired.evaluate(async (base) => {
    const w = window.onemap.widgets[0];
    const old = w.token;
    const fresh = await w.refreshToken();
    const me = async (t) => (await fetch(`${base}/auth/me`, { headers: { Authorization: `Bearer ${t}` } })).status;
    return { changed: !!fresh && fresh !== old, widget_uses_new: w.token === fresh,
      old_status: await me(old), new_status: await me(fresh),
      event: window.onemapEvents.filter((e) => e.type === 'onemap:token-refreshed').length,
      expires: w.tokenExpires };
  }, BASE);
  // the token revoked under the running map: tiles refused → the form; signing in
  // again brings the tiles back
  auth.revoked = await expired.evaluate(async ([base, point]) => {
    const w = window.onemap.widgets[0];
    await fetch(`${base}/auth/logout`, { method: 'POST', headers: { Authorization: `Bearer ${w.token}` } });
    w.map.jumpTo({ center: point, zoom: 15.3 });
    for (let i = 0; i < 150 && !document.querySelector('[data-testid=onemap-auth]'); i += 1) {
      await new Promise((r) => setTimeout(r, 100));
    }
    return { overlay: !!document.querySelector('[data-testid=onemap-auth]') };
  }, [BASE, CITY.other_grid.point]);
  if (auth.revoked.overlay) {
    await expired.getByTestId('onemap-auth-username').fill(worker.username);
    await expired.getByTestId('onemap-auth-password').fill(worker.password);
    await expired.getByTestId('onemap-auth-submit').click();
    await expired.waitForFunction(() => !document.querySelector('[data-testid=onemap-auth]'),
      null, { timeout: 30000 });
    auth.revoked.recovered = await expired.evaluate(async () => {
      const { map } = window.onemap.widgets[0];
      await new Promise((r) => (map.loaded() && map.areTilesLoaded() ? r() : map.once('idle', r)));
      return map.queryRenderedFeatures().length;
    });
  }
  await expired.context().close();

  // --- the iframe form: the credential by postMessage, never in the URL --------------
  const framed = watch(await (await browser.newContext({ viewport: { width: 1280, height: 800 } }))
    .newPage(), 'iframe');
  const widgetUrls = [];
  framed.on('request', (r) => { if (r.url().includes('/widget/')) widgetUrls.push(r.url()); });
  await framed.goto(PARAMS.hosts.iframe);
  const frame = await until(() => framed.frames().find((f) => f.url().includes('/widget/')),
    'no widget iframe', 30000);
  await frame.waitForFunction(() => window.onemap && window.onemap.ready, null, { timeout: 30000 });
  const iframe = await frame.evaluate(async () => {
    await window.onemap.ready;
    const w = window.onemap.widgets[0];
    if (!w.map.loaded()) await new Promise((r) => w.map.once('idle', r));
    return { has_token: /^om_/.test(w.token), rendered: w.map.queryRenderedFeatures().length,
      href: window.location.href };
  });
  iframe.messages = await framed.evaluate(() => window.messages.map((m) => m.type));
  iframe.urls_with_token = widgetUrls.filter((u) => /token=|om_/.test(u));
  await framed.context().close();

  // --- the same host page from an origin the server does not name: no frame ----------
  const elsewhere = watch(await (await browser.newContext({ viewport: { width: 1280, height: 800 } }))
    .newPage(), 'iframe-elsewhere');
  const refusals = [];
  elsewhere.on('console', (m) => { if (/frame-ancestors/.test(m.text())) refusals.push(m.text()); });
  await elsewhere.goto(PARAMS.hosts.iframe_elsewhere);
  await until(() => refusals.length > 0, 'a page of another origin framed /widget/', 30000);
  const iframeElsewhere = {
    refused: refusals.length > 0,
    widget_frames: (await Promise.all(elsewhere.frames()
      .filter((f) => f !== elsewhere.mainFrame())
      .map((f) => f.evaluate(() => Boolean(window.onemap)).catch(() => false))))
      .filter(Boolean),
    messages: await elsewhere.evaluate(() => window.messages.map((m) => m.type)),
  };
  await elsewhere.context().close();

  // --- an API item page's link: /widget/?record=<collection>/<id>&center=… opens it ----
  const linked = watch(await (await browser.newContext({ viewport: { width: 1280, height: 800 } }))
    .newPage(), 'record-link');
  await linked.goto(`${BASE}/widget/?theme=grid_management&lang=zh&center=${H.point.join(',')}`
    + `&record=building/${H.building_id}#token=${USERS.worker.token}`);
  await linked.waitForFunction(() => {
    const w = window.onemap && window.onemap.widgets && window.onemap.widgets[0];
    return w && w.popupState && w.popupState.status;
  }, null, { timeout: 30000 });
  const recordLink = await linked.evaluate(() => {
    const w = window.onemap.widgets[0];
    const s = w.popupState;
    return { collection: s.collection, id: s.id, status: s.status,
      center: w.map.getCenter().toArray(), href: window.location.href };
  });
  await linked.context().close();

  // --- /widget/ opened directly, no credential (the README's quick start): the public
  // map with a 登录 button; signing in there shows the caller's households ------------
  const direct = watch(await (await browser.newContext({ viewport: { width: 1280, height: 800 } }))
    .newPage(), 'direct');
  await direct.goto(`${BASE}/widget/?lang=zh&center=${H.point.join(',')}`);
  await direct.evaluate(() => window.onemap.ready);
  const signInButton = direct.getByTestId('onemap-signin');
  const directSignIn = { button: await signInButton.isVisible() && await signInButton.innerText() };
  await signInButton.click();
  directSignIn.form_message = await direct.getByTestId('onemap-auth-message').textContent();
  await direct.getByTestId('onemap-auth-cancel').click();
  directSignIn.cancelled = !(await direct.getByTestId('onemap-auth').count());
  await signInButton.click();
  await direct.getByTestId('onemap-auth-username').fill(USERS.worker.username);
  await direct.getByTestId('onemap-auth-password').fill(USERS.worker.password);
  await direct.getByTestId('onemap-auth-submit').click();
  await direct.getByTestId('onemap-auth').waitFor({ state: 'detached', timeout: 30000 });
  directSignIn.after = await direct.evaluate(() => {
    const w = window.onemap.widgets[0];
    return { has_token: /^om_/.test(w.token),
      button_hidden: document.querySelector('[data-testid=onemap-signin]').style.display === 'none' };
  });
  await direct.context().close();

  return { toggled, history, masked, grid, household, stats_tables: stats, labels, popup,
    foreign, foreign_grid: foreignGrid, from_popup: fromPopup, place, counted, auth, iframe,
    iframe_elsewhere: iframeElsewhere, record_link: recordLink, direct_sign_in: directSignIn };
});
