// The grid worker's mobile map (/m/) screen by screen at 390×844 with touch (issue 13).
//
// One session: the sign-in page, my grid, a search hit (household card and marker),
// a report (the submit button on screen without scrolling, the confirmation card,
// the browser's log during the report), my events (the detail with its photo and
// history), then the language switch (English, kept over a reload, back to Chinese).
// On every screen every visible interactive element is measured. PARAMS.photo: a PNG
// to attach; PARAMS.tag: text put in the description. Screenshots go to
// ARTIFACTS/mobile/. The result is checked by tests/web/test_mobile_screens.py.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { ARTIFACTS, BASE, CITY, PARAMS, USERS, check, main, until, watch } from './lib.mjs';

const worker = USERS.worker;
const [lon, lat] = CITY.household.point; // a building of the worker's grid
const dir = path.join(ARTIFACTS, 'mobile');
mkdirSync(dir, { recursive: true });

/** Every visible button, link, field and summary smaller than 44×44 CSS px. */
function smallTargets(page) {
  return page.evaluate(() => {
    const sel = 'button, a[href], input:not([type=hidden]), select, textarea, summary, '
      + '[role=button], [tabindex]:not([tabindex="-1"])';
    const small = [];
    let measured = 0;
    for (const e of document.querySelectorAll(sel)) {
      if (!e.checkVisibility({ checkOpacity: false, checkVisibilityCSS: true })) continue;
      const r = e.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) continue;
      measured += 1;
      if (r.width < 43.5 || r.height < 43.5) {
        small.push(`${e.tagName.toLowerCase()}${e.id ? `#${e.id}` : ''}`
          + `${e.dataset.testid ? `[${e.dataset.testid}]` : ''}.${e.className || ''} `
          + `"${(e.textContent || e.getAttribute('aria-label') || '').trim().slice(0, 20)}" `
          + `${Math.round(r.width)}×${Math.round(r.height)}`);
      }
    }
    return { measured, small };
  });
}

/** UI strings on screen not in `lang`: Latin words in Chinese, Chinese in English. */
function otherLanguage(page, lang) {
  return page.evaluate((l) => {
    const wrong = [];
    const test = (s) => {
      // names of systems and units read the same in both languages
      const rest = s.replace(/EPSG:\d+|GPS|WGS84|CGCS2000|m²|\bm\b/g, '');
      return l === 'zh' ? /[A-Za-z]{2,}/.test(rest) : /[\u3400-\u9fff]/.test(rest);
    };
    for (const e of document.querySelectorAll('[data-i18n]')) {
      if (e.id === 'lang' || !e.checkVisibility()) continue; // the switch names the other language
      // a string with arguments carries data (a grid's name): its text is checked
      // only in Chinese, where data and UI share the script
      if (e.hasAttribute('data-i18n-args') && l === 'en') continue;
      if (test(e.textContent)) wrong.push(e.textContent.trim().slice(0, 60));
    }
    for (const e of document.querySelectorAll('[data-i18n-placeholder], [data-i18n-label]')) {
      if (e.id === 'lang' || !e.checkVisibility()) continue;
      const s = `${e.getAttribute('placeholder') || ''} ${e.getAttribute('aria-label') || ''}`;
      if (test(s)) wrong.push(s.trim().slice(0, 60));
    }
    const chrome = ['.bar', '.tabs', '#login-form h1', '#login-form label']
      .flatMap((q) => [...document.querySelectorAll(q)])
      .filter((e) => e.checkVisibility())
      .map((e) => e.innerText.replace(document.getElementById('lang').innerText, ''));
    for (const s of chrome) if (test(s)) wrong.push(`chrome: ${s.trim().slice(0, 60)}`);
    return { lang: document.documentElement.lang, wrong };
  }, lang);
}

await main(async (browser) => {
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
    geolocation: { longitude: lon, latitude: lat, accuracy: 8 }, locale: 'zh-CN',
  });
  await context.grantPermissions(['geolocation'], { origin: BASE });
  const page = watch(await context.newPage(), 'mobile');
  // the browser's log: console errors and failed requests, with what the app was doing
  let phase = 'start';
  const trouble = [];
  page.on('console', (m) => { if (m.type() === 'error') trouble.push({ phase, what: m.text() }); });
  page.on('pageerror', (e) => trouble.push({ phase, what: `pageerror ${e.message}` }));
  page.on('requestfailed', (r) => trouble.push(
    { phase, what: `${r.method()} ${r.url().slice(0, 160)} ${r.failure()?.errorText}` }));
  const shots = {};
  const shot = async (name) => {
    shots[name] = path.join(dir, `${name}.png`);
    await page.screenshot({ path: shots[name] });
  };
  const targets = {};
  const language = {};

  // sign-in page, Chinese by default
  await page.goto(`${BASE}/m/`);
  await page.getByTestId('login-username').waitFor();
  targets.login = await smallTargets(page);
  language.login_zh = await otherLanguage(page, 'zh');
  await shot('login-zh');
  await page.getByTestId('login-username').fill(worker.username);
  await page.getByTestId('login-password').fill(worker.password);
  await page.getByTestId('login-submit').click();
  await page.waitForFunction(() => window.onemapMobile && window.onemapMobile.whenMapReady(),
    null, { timeout: 60000 });
  await page.evaluate(() => window.onemapMobile.whenMapReady());

  // my grid, a list opened
  await page.getByTestId('tab-grid').click();
  await page.locator('details[data-testid=household] summary').click();
  await page.getByTestId('household-item').first().waitFor();
  targets.grid = await smallTargets(page);
  language.grid_zh = await otherLanguage(page, 'zh');
  await shot('grid-zh');

  // find the household: a card and a marker
  phase = 'search';
  await page.getByTestId('tab-search').click();
  await page.getByTestId('search-input').fill(CITY.household.room_no);
  await page.getByTestId('search-submit').click();
  const hit = page.locator(
    `[data-testid=search-result][data-collection=household][data-id="${CITY.household.id}"] button`);
  await hit.waitFor({ timeout: 30000 }).catch(async () => {
    const shown = await page.getByTestId('search-results').innerText();
    check(false, `the search for ${CITY.household.room_no} did not list household `
      + `${CITY.household.id}: ${JSON.stringify(shown.slice(0, 300))}`);
  });
  await hit.click();
  await page.locator('[data-testid=household-card][data-marked=true]').waitFor({ timeout: 30000 });
  const card = await page.getByTestId('household-card').innerText();
  const residents = await page.getByTestId('household-resident').allInnerTexts();
  // the flight to the hit has ended (idle, or at most 20 s for the tiles)
  await until(() => page.evaluate(() => !window.onemapMobile.map.isMoving()),
    'the map is still flying to the search hit', 20000);
  await page.evaluate(() => new Promise((r) => {
    const map = window.onemapMobile.map;
    if (map.areTilesLoaded()) r(); else { map.once('idle', r); setTimeout(r, 20000); }
  }));
  const marker = await page.evaluate(() => {
    const map = window.onemapMobile.map;
    const drawn = map.queryRenderedFeatures({ layers: ['hit'] });
    if (!drawn.length) return null;
    const [x, y] = drawn[0].geometry.coordinates;
    const px = map.project([x, y]);
    const mapBox = map.getContainer().getBoundingClientRect();
    const sheet = document.getElementById('sheet').getBoundingClientRect();
    return { lon: x, lat: y, screen_x: mapBox.left + px.x, screen_y: mapBox.top + px.y,
      map_top: mapBox.top, sheet_top: sheet.top, width: mapBox.width };
  });
  check(await page.getByTestId('search-back').isVisible(), 'no way back to the search results');
  targets.search = await smallTargets(page);
  language.search_zh = await otherLanguage(page, 'zh');
  await shot('search-household');

  // report: the form with the submit button on screen, then the confirmation
  phase = 'report-form';
  await page.getByTestId('report-button').click();
  await page.getByTestId('report-category').selectOption('sanitation');
  const description = `${PARAMS.tag} screens`;
  await page.getByTestId('report-description').fill(description);
  await page.getByTestId('report-photo').setInputFiles(PARAMS.photo);
  await page.locator('#photo-preview:not([hidden])').waitFor();
  await page.getByTestId('report-gps').click();
  await page.waitForFunction((name) => document.querySelector(
    '[data-testid=report-locate-result]').textContent.includes(name), CITY.grid.name);
  const submit = await page.evaluate(() => {
    const b = document.querySelector('[data-testid=report-submit]');
    const r = b.getBoundingClientRect();
    const at = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    return { top: r.top, bottom: r.bottom, left: r.left, right: r.right,
      viewport: [window.innerWidth, window.innerHeight],
      tabs_top: document.querySelector('.tabs').getBoundingClientRect().top,
      on_top: at === b || b.contains(at),
      sheet_scroll: document.getElementById('sheet').scrollTop,
      page_scroll: window.scrollY };
  });
  targets.report = await smallTargets(page);
  language.report_zh = await otherLanguage(page, 'zh');
  await shot('report-form');
  phase = 'report';
  const troubleBefore = trouble.length;
  await page.getByTestId('report-submit').click();
  await page.locator('[data-testid=report-confirmation][data-state=sent][data-assigned=true]')
    .waitFor({ timeout: 60000 });
  const confirmation = await page.getByTestId('report-confirmation').innerText();
  const confirmationState = await page.getByTestId('report-confirmation').getAttribute('data-state');
  const submitted = await page.evaluate(() => window.onemapMobile.lastSubmitted);
  // the photo's upload is the last request of a report: let the log settle
  await page.waitForTimeout(500);
  const reportTrouble = trouble.slice(troubleBefore);
  targets.confirmation = await smallTargets(page);
  language.confirmation_zh = await otherLanguage(page, 'zh');
  await shot('report-confirmation');
  phase = 'events';

  // my events: the detail with its photo and history
  await page.getByTestId('report-view-events').click();
  const row = page.locator(`[data-testid=my-event][data-event-id="${submitted.event_id}"] `
    + '[data-testid=my-event-open]');
  await row.waitFor({ timeout: 30000 });
  await page.locator('[data-testid=my-event]').first().waitFor();
  targets.events = await smallTargets(page);
  await shot('my-events');
  await row.click();
  await until(() => page.evaluate(() => {
    const img = document.querySelector('[data-testid=event-detail] [data-testid=event-photo]');
    return img && img.complete && img.naturalWidth > 0;
  }), 'the event detail shows no photo', 30000);
  const detail = {
    text: await page.getByTestId('event-detail').innerText(),
    event_id: await page.getByTestId('event-detail').getAttribute('data-event-id'),
    photos: await page.evaluate(() => [...document.querySelectorAll(
      '[data-testid=event-detail] [data-testid=event-photo]')].map((i) => [i.naturalWidth, i.naturalHeight])),
    history: await page.evaluate(() => [...document.querySelectorAll(
      '[data-testid=event-history-item]')].map((li) => [li.dataset.status, li.innerText])),
  };
  targets.detail = await smallTargets(page);
  language.detail_zh = await otherLanguage(page, 'zh');
  await shot('event-detail');

  // one language at a time: English, kept over a reload, then Chinese again
  await page.getByTestId('lang-switch').click();
  language.detail_en = await otherLanguage(page, 'en');
  targets.detail_en = await smallTargets(page);
  await shot('event-detail-en');
  await page.getByTestId('report-button').click();
  language.report_en = await otherLanguage(page, 'en');
  targets.report_en = await smallTargets(page);
  await shot('report-form-en');
  await page.reload();
  await page.waitForFunction(() => window.onemapMobile && window.onemapMobile.whenMapReady(),
    null, { timeout: 60000 });
  await page.evaluate(() => window.onemapMobile.whenMapReady());
  await page.getByTestId('tab-grid').click();
  language.grid_en_reloaded = await otherLanguage(page, 'en');
  const tabsEn = await page.locator('.tabs').innerText();
  await shot('grid-en');
  await page.getByTestId('lang-switch').click();
  language.grid_zh_again = await otherLanguage(page, 'zh');
  const tabsZh = await page.locator('.tabs').innerText();
  // signed out, in Chinese again
  await page.getByTestId('logout').click();
  await page.getByTestId('login-username').waitFor();
  targets.login_after = await smallTargets(page);
  language.login_after = await otherLanguage(page, 'zh');

  return { shots, targets, language, card, residents, marker, submit, confirmation,
    confirmation_state: confirmationState, submitted, report_trouble: reportTrouble,
    trouble, detail, tabs: { en: tabsEn, zh: tabsZh }, description };
});
