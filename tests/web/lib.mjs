// Shared pieces of the browser test scripts (run by tests/web/conftest.py::run_script).
//
// A script calls main(async (browser) => result): one headless Chromium per script,
// one JSON line on stdout ({"ok": true, "result": ...} or {"ok": false, "error": ...,
// "log": [...]}) and exit code 0 or 1. check(cond, message) is the assertion: its
// message is what pytest shows.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
// playwright-core lives in web/node_modules, not beside the scripts.
const require = createRequire(path.join(ROOT, 'web', 'package.json'));
export const { chromium } = require('playwright-core');

const json = (name, fallback) => (process.env[name] ? JSON.parse(process.env[name]) : fallback);
export const BASE = (process.env.BASE_URL || 'http://127.0.0.1:8000').replace(/\/$/, '');
export const USERS = json('CREDENTIALS', {});
export const CITY = json('CITY', {});
export const PARAMS = json('PARAMS', {});
export const ARTIFACTS = process.env.ARTIFACTS || path.join(ROOT, 'var', 'test-artifacts');

export class CheckFailed extends Error {}

/** The scripts' assertion: throws with `message` (shown by pytest) unless `cond`. */
export function check(cond, message) {
  if (!cond) throw new CheckFailed(typeof message === 'function' ? message() : message);
}

const LOG = [];
export const log = (line) => LOG.push(line);

/** Keep a page's console messages, errors and failed requests for the failure report. */
export function watch(page, label = 'page') {
  page.on('console', (m) => LOG.push(`[${label}] ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => LOG.push(`[${label}] pageerror: ${e.message}`));
  page.on('requestfailed', (r) =>
    LOG.push(`[${label}] requestfailed ${r.url().slice(0, 200)} ${r.failure()?.errorText}`));
  page.on('response', (r) => {
    if (r.status() >= 400) LOG.push(`[${label}] HTTP ${r.status()} ${r.url().slice(0, 200)}`);
  });
  return page;
}

/** Await `probe()` until it returns a truthy value; fail with `message` after `timeout` ms. */
export async function until(probe, message, timeout = 60000) {
  const end = Date.now() + timeout;
  for (;;) {
    const value = await probe();
    if (value) return value;
    check(Date.now() < end, message);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Run the script body with one browser; print its result as one JSON line. */
export async function main(body) {
  let browser;
  let answer;
  try {
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      // WebGL through SwiftShader: headless Chromium has no GPU here.
      args: ['--no-sandbox', '--use-angle=swiftshader', '--enable-unsafe-swiftshader',
        '--ignore-gpu-blocklist'],
    });
    answer = { ok: true, result: await body(browser) };
  } catch (e) {
    answer = { ok: false, error: e instanceof CheckFailed ? e.message : (e.stack || String(e)),
      log: LOG.slice(-60) };
    process.exitCode = 1;
  } finally {
    if (browser) await browser.close().catch(() => {});
  }
  process.stdout.write(`${JSON.stringify(answer)}\n`);
}

/** The page pixel of [lon, lat] on the first widget's map (for a real mouse click). */
export async function mapPixel(page, lngLat) {
  const box = await page.getByTestId('onemap-map').boundingBox();
  const p = await page.evaluate(([ll]) => window.onemap.widgets[0].map.project(ll), [lngLat]);
  return [box.x + p.x, box.y + p.y];
}

/** Move the first widget's map and wait until it is drawn. */
export const mapGoTo = (page, lngLat, zoom) => page.evaluate(async ([ll, z]) => {
  const { map } = window.onemap.widgets[0];
  map.jumpTo({ center: ll, zoom: z });
  await new Promise((r) => { map.once('idle', r); map.triggerRepaint(); });
}, [lngLat, zoom]);

/** What the analysis panel shows, read from the DOM: the process, its fields and form
 * values, picked features, the error, the summary rows, the legend, the job, and whether
 * a popup is open. */
export const analysisShown = (page) => page.evaluate(() => {
  const q = (sel) => Array.from(document.querySelectorAll(sel));
  const a = window.onemap.widgets[0].analysis;
  return {
    process: (document.querySelector('[data-testid=onemap-analysis-process]') || {}).value,
    fields: q('[data-testid=onemap-analysis-field]').map((f) => ({ input: f.dataset.input,
      kind: f.dataset.kind })),
    values: Object.fromEntries(q('[data-testid=onemap-analysis-form] [name]')
      .map((i) => [i.name, i.value])),
    picked: q('[data-testid=onemap-analysis-picked]').map((p) => ({ input: p.dataset.input,
      id: p.dataset.id, found: p.dataset.found, text: p.textContent })),
    error: (document.querySelector('[data-testid=onemap-analysis-error]') || {}).textContent || '',
    summary: q('[data-testid=onemap-analysis-summary] tr').map((r) => ({ key: r.dataset.key,
      label: r.cells[0].textContent, value: r.cells[1].textContent })),
    legend: q('[data-testid=onemap-analysis-legend-entry]').map((e) => ({ output: e.dataset.output,
      layer: e.dataset.layer, property: e.dataset.property || null, value: e.dataset.value || null,
      count: e.dataset.count != null ? Number(e.dataset.count) : null, text: e.textContent })),
    job: a && a.job ? { id: a.job.id, status: a.job.status, progress: a.job.progress,
      log: a.job.log } : null,
    popup: !!window.onemap.widgets[0].popupState,
  };
});

/** Every analysis result feature drawn in the view, once the map is idle: its output,
 * layer, type, colour, whether dashed, and the feature properties named in `keys`. */
export const analysisRendered = (page, keys) => page.evaluate(async (names) => {
  const w = window.onemap.widgets[0];
  const { map } = w;
  await new Promise((r) => { map.once('idle', r); map.triggerRepaint(); });
  const colour = (c) => (c && typeof c === 'object' && c.toString ? c.toString() : String(c));
  const out = [];
  (w.analysis.results ? w.analysis.results.layers : []).forEach((entry) => {
    const present = entry.layers.filter((id) => map.getLayer(id));
    if (!present.length) return;
    map.queryRenderedFeatures({ layers: present }).forEach((f) => {
      const p = f.layer.paint || {};
      const row = { output: entry.output, layer: f.layer.id, type: f.layer.type,
        colour: colour(p['circle-color'] || p['line-color'] || p['fill-color']),
        dashed: !!p['line-dasharray'] };
      names.forEach((k) => { row[k] = f.properties[k]; });
      out.push(row);
    });
  });
  return out;
}, keys);
