// The grid worker's mobile map (/m/) at phone size: sign in, my grid, two reports.
//
// PARAMS.photo: a PNG file to attach; PARAMS.tag: text put in both descriptions so
// the test finds the rows in PostGIS. The phone's GPS is at a point of the worker's
// grid (Playwright's geolocation). Report 1 is sent online; report 2 is made with
// the network off (context.setOffline(true)), kept on the phone, and sent when the
// network comes back; its confirmation card goes from queued to sent. Result: {grid_text,
// online: {...}, offline: {...}, screenshot, queued_card, sent_card}.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { ARTIFACTS, BASE, CITY, PARAMS, USERS, check, main, until, watch } from './lib.mjs';

const worker = USERS.worker;
const [lon, lat] = CITY.household.point; // a building of the worker's grid

async function report(page, description) {
  await page.getByTestId('report-button').click();
  await page.getByTestId('report-category').selectOption('sanitation');
  await page.getByTestId('report-description').fill(description);
  await page.getByTestId('report-photo').setInputFiles(PARAMS.photo);
  await page.getByTestId('report-gps').click();
  await page.waitForFunction(() => /EPSG:4326/.test(
    document.querySelector('[data-testid=report-position]').textContent));
}

await main(async (browser) => {
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
    geolocation: { longitude: lon, latitude: lat, accuracy: 8 }, locale: 'zh-CN',
  });
  await context.grantPermissions(['geolocation'], { origin: BASE });
  const page = watch(await context.newPage(), 'mobile');
  await page.goto(`${BASE}/m/`);

  // sign in
  await page.getByTestId('login-username').fill(worker.username);
  await page.getByTestId('login-password').fill(worker.password);
  await page.getByTestId('login-submit').click();
  await page.waitForFunction(() => window.onemapMobile && window.onemapMobile.whenMapReady(),
    null, { timeout: 60000 });
  await page.evaluate(() => window.onemapMobile.whenMapReady());
  const gridText = await page.getByTestId('grid-summary').innerText();
  check(gridText.includes(CITY.grid.name),
    `"my grid" shows ${JSON.stringify(gridText.slice(0, 200))}, not ${CITY.grid.name}`);
  check(!gridText.includes(CITY.other_grid.name), 'another grid is listed as mine');
  // the grid's outline is drawn on the map (from the tiles or the app's own outline)
  const drawn = await page.evaluate(async () => {
    const map = window.onemapMobile.map;
    if (!map.areTilesLoaded()) await new Promise((r) => map.once('idle', r));
    return map.queryRenderedFeatures().map((f) => f.sourceLayer || f.source);
  });
  check(drawn.some((s) => s === 'grid' || s === 'mygrid'),
    () => `no grid outline on the mobile map (drawn: ${[...new Set(drawn)].join(', ')})`);
  const dir = path.join(ARTIFACTS, 'mobile');
  mkdirSync(dir, { recursive: true });
  const screenshot = path.join(dir, 'my-grid.png');
  await page.screenshot({ path: screenshot });

  // report 1, online: located in the worker's grid by the locate process
  const first = `${PARAMS.tag} online`;
  await report(page, first);
  await page.waitForFunction((name) => document.querySelector(
    '[data-testid=report-locate-result]').textContent.includes(name), CITY.grid.name);
  await page.getByTestId('report-submit').click();
  await page.waitForFunction((d) => window.onemapMobile.lastSubmitted
    && window.onemapMobile.lastSubmitted.event_id, first, { timeout: 60000 });
  const online = await page.evaluate(() => window.onemapMobile.lastSubmitted);
  check(await page.evaluate(() => window.onemapMobile.queueLength()) === 0,
    'the online report is still queued');
  await page.screenshot({ path: path.join(dir, 'reported.png') });

  // report 2, offline: kept on the phone, sent once when the connection returns
  await context.setOffline(true);
  check(await page.evaluate(() => !navigator.onLine), 'the page still thinks it is online');
  const second = `${PARAMS.tag} offline`;
  await report(page, second);
  await page.getByTestId('report-submit').click();
  const queued = () => page.evaluate(() => window.onemapMobile.queueLength());
  await until(async () => (await queued()) === 1, 'the offline report is not kept on the phone');
  await page.waitForFunction(() => /联网后|back online/.test(
    document.querySelector('[data-testid=report-message]').textContent));
  const queuedOffline = await page.evaluate(() => window.onemapMobile.queueLength());
  // the confirmation says it is kept on the phone, and turns to sent once it is
  // the card is drawn after the message (it reads the phone's queue first): wait for
  // it to show this report, then read its state
  await page.waitForFunction((text) => {
    const card = document.querySelector('[data-testid=report-confirmation]');
    return card && !card.hidden && card.getAttribute('data-client-uuid')
      && card.getAttribute('data-client-uuid') !== text;
  }, online.client_uuid, { timeout: 30000 });
  const queuedCard = await page.getByTestId('report-confirmation').getAttribute('data-state');
  await page.screenshot({ path: path.join(dir, 'offline-queued.png') });
  await context.setOffline(false);
  await until(async () => (await queued()) === 0,
    'the offline report was not sent after reconnecting');
  await page.locator('[data-testid=report-confirmation][data-state=sent]').waitFor({ timeout: 30000 });
  const sentCard = await page.getByTestId('report-confirmation').innerText();
  await page.screenshot({ path: path.join(dir, 'offline-sent.png') });
  const offline = await page.evaluate(() => window.onemapMobile.lastSubmitted);
  check(offline && offline.client_uuid !== online.client_uuid,
    () => `the offline report was not the last one sent: ${JSON.stringify([online, offline])}`);
  // a second flush and a reload send nothing more
  await page.evaluate(() => window.onemapMobile.flush());
  await page.reload();
  await page.waitForFunction(() => window.onemapMobile && window.onemapMobile.ready);
  await page.evaluate(() => window.onemapMobile.flush());
  const queuedAfter = await queued();
  return { grid_text: gridText.slice(0, 300), drawn: [...new Set(drawn)], online, offline, queued_offline: queuedOffline,
    queued_after: queuedAfter, screenshot, descriptions: [first, second],
    queued_card: queuedCard, sent_card: sentCard };
});
