// The keybimp Dagster UI as a person sees it: headless Debian Chromium driven by playwright-core.
//
// Starts its own emulators (demo shop), syncs two days of demo-shop, syncs a third day during an API
// outage (emulator faults: every request 503) so that partition fails, then starts `dagster dev` on a
// temporary DAGSTER_HOME holding the project's dagster.yaml.  In the browser: the lineage from raw
// KeyCRM orders to Bimp customer orders is drawn; the asset groups are there; the partitioned asset's
// Partitions tab shows the failed and materialised partitions; after the outage, re-running the failed
// day turns it green.  Screenshots go to ../screenshots/ (git-ignored).
//
// Every process is started in its own session (process group) and stopped with SIGTERM to the group,
// then SIGKILL if it lingers: `dagster dev` started from a non-interactive shell ignores signals otherwise.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PYTHON = path.join(ROOT, '.venv', 'bin', 'python');
const DAGSTER = path.join(ROOT, '.venv', 'bin', 'dagster');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SHOTS = path.join(ROOT, 'screenshots');
const OK_DAYS = ['2026-11-29', '2026-11-30'];
const OUTAGE_DAY = '2026-11-28';
const LINEAGE = ['keycrm_orders_raw', 'reference_data', 'staged_orders', 'staged_order_lines', 'staged_buyers',
  'matched_customers', 'matched_products', 'bimp_customer_orders'];
const GROUPS = ['keycrm_raw', 'staged', 'matched', 'bimp_documents', 'keycrm_uploads'];
const LONG = 240_000; // this 2-core machine may be busy: a page's first graph layout can take a while

const procs = [];
let tmp, env, web, browser, page;

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

function portOpen(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1' });
    sock.once('connect', () => { sock.destroy(); resolve(true); });
    sock.once('error', () => resolve(false));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, fn, timeoutMs, proc) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc && proc.exitCode !== null) throw new Error(`${what}: the process exited (code ${proc.exitCode})`);
    if (await fn()) return;
    await sleep(500);
  }
  throw new Error(`${what}: not ready after ${timeoutMs / 1000} s`);
}

function start(name, cmd, args) {
  const log = fs.openSync(path.join(tmp, `${name}.log`), 'a');
  const proc = spawn(cmd, args, { cwd: ROOT, env, detached: true, stdio: ['ignore', log, log] });
  procs.push({ name, proc });
  return proc;
}

async function stopAll() {
  for (const { proc } of procs.reverse()) {
    if (proc.exitCode !== null || proc.signalCode !== null) continue;
    try { process.kill(-proc.pid, 'SIGTERM'); } catch { continue; }
    const done = new Promise((r) => proc.once('exit', r));
    if (await Promise.race([done.then(() => true), sleep(20_000).then(() => false)])) continue;
    try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* gone */ }
  }
}

function keybimp(...args) {
  const r = spawnSync(PYTHON, ['-W', 'ignore', '-m', 'keybimp_pipeline.cli', ...args],
    { cwd: ROOT, env, encoding: 'utf8', timeout: 600_000 });
  return { code: r.status, out: `${r.stdout}\n${r.stderr}` };
}

function post(url, body) {
  // a fresh connection per call: a kept-alive socket the emulator has since closed would fail the request
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = http.request(url, { method: 'POST', agent: false,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.end(data);
  });
}

async function faults(body) {
  for (const url of [env.KEYCRM_URL, env.BIMP_URL]) {
    assert.equal(await post(`${url}/__admin/faults`, body), 200, `faults on ${url}`);
  }
}

async function dismissOnboarding() {
  // on first visits Dagster asks, after a moment, for a newsletter sign-up; a person presses Skip
  const skip = page.getByRole('button', { name: 'Skip' });
  if (await skip.isVisible().catch(() => false)) {
    // the locator handler below may get there first: then this click finds no button, which is fine
    await skip.click({ timeout: 5_000 }).catch(() => {});
    await skip.waitFor({ state: 'hidden', timeout: 10_000 });
  }
}

async function shot(name) {
  await dismissOnboarding();
  const file = path.join(SHOTS, name);
  await page.screenshot({ path: file });
  console.log(`screenshot: ${path.relative(ROOT, file)}`);
}

async function open(url) {
  await page.goto(`${web}${url}`, { waitUntil: 'domcontentloaded', timeout: LONG });
  await dismissOnboarding();
}

async function statusCounts() {
  const text = await page.locator('body').innerText();
  const count = (label) => Number((text.match(new RegExp(`${label} \\((\\d+)\\)`)) || [])[1]);
  return { failed: count('Failed'), materialized: count('Materialized'), missing: count('Missing') };
}

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'keybimp-ui-'));
  const [kPort, bPort, wPort] = [await freePort(), await freePort(), await freePort()];
  const demo = spawnSync(PYTHON, ['-c', 'from keybimp_pipeline.emulators import demo_shop as d; '
    + 'print(d.DEMO_KEYCRM_KEY); print(d.DEMO_BIMP_EMAIL); print(d.DEMO_BIMP_PASSWORD)'],
  { cwd: ROOT, encoding: 'utf8' }).stdout.trim().split('\n');
  assert.equal(demo.length, 3, 'demo credentials');
  // the shipped example, pointed at this run's emulators
  const config = fs.readFileSync(path.join(ROOT, 'integrations.example.yaml'), 'utf8')
    .replaceAll('http://127.0.0.1:8801', `http://127.0.0.1:${kPort}`)
    .replaceAll('http://127.0.0.1:8802', `http://127.0.0.1:${bPort}`);
  fs.writeFileSync(path.join(tmp, 'integrations.yaml'), config);
  const home = path.join(tmp, 'dagster_home');
  fs.mkdirSync(home);
  fs.copyFileSync(path.join(ROOT, 'dagster.yaml'), path.join(home, 'dagster.yaml'));
  env = {
    ...process.env, DAGSTER_HOME: home, KEYBIMP_DATA: path.join(tmp, 'data'),
    KEYBIMP_CONFIG: path.join(tmp, 'integrations.yaml'), KEYCRM_KEY_DEMO_SHOP: demo[0], BIMP_EMAIL: demo[1],
    BIMP_PASSWORD: demo[2], KEYCRM_URL: `http://127.0.0.1:${kPort}`, BIMP_URL: `http://127.0.0.1:${bPort}`,
  };
  fs.mkdirSync(env.KEYBIMP_DATA);

  const emulators = start('emulators', PYTHON, ['-m', 'keybimp_pipeline.emulators.serve', '--demo', '--orders',
    '600', '--keycrm-port', String(kPort), '--bimp-port', String(bPort), '--keycrm2-port', String(await freePort())]);
  await waitFor('emulators', async () => (await portOpen(kPort)) && (await portOpen(bPort)), LONG, emulators);

  const ok = keybimp('sync', 'demo-shop', '--from', OK_DAYS[0], '--to', OK_DAYS[1], '--quiet');
  assert.equal(ok.code, 0, ok.out);
  await faults({ fail_ratio: 1.0, fail_status: 503, retry_after_s: 0 }); // the APIs are down
  const down = keybimp('sync', 'demo-shop', '--from', OUTAGE_DAY, '--to', OUTAGE_DAY, '--quiet');
  assert.equal(down.code, 1, `a sync during the outage must fail:\n${down.out}`);
  await faults({}); // and back

  web = `http://127.0.0.1:${wPort}`;
  const dagster = start('dagster', DAGSTER, ['dev', '-w', 'workspace.yaml', '-h', '127.0.0.1', '-p', String(wPort)]);
  await waitFor('dagster dev', async () => {
    try { return (await fetch(`${web}/server_info`)).ok; } catch { return false; }
  }, LONG, dagster);

  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  page.setDefaultTimeout(LONG);
  // the sign-up dialog may also pop up in the middle of a step: dismiss it whenever it blocks an action
  await page.addLocatorHandler(page.getByRole('button', { name: 'Skip' }), async (skip) => { await skip.click(); });
});

after(async () => {
  if (browser) await browser.close();
  await stopAll();
  if (tmp && !process.env.KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
});

function drawnAs(name, labels) {
  // narrow nodes show long names shortened in the middle ("bimp_custo…_orders")
  return labels.some((l) => l === name || (l.includes('…') && name.startsWith(l.split('…')[0])
    && name.endsWith(l.split('…').pop())));
}

test('the lineage raw KeyCRM orders → staged → matched → Bimp customer orders is drawn', async () => {
  await open('/assets/bimp_customer_orders?view=lineage&lineageScope=upstream&lineageDepth=6');
  const graph = page.locator('svg[class*="sVGContainer"]');
  await page.locator('[class*="AssetNode_assetName"]', { hasText: 'keycrm_orders_raw' }).first().waitFor();
  await sleep(1000);
  const labels = (await graph.locator('[class*="AssetNode_assetName"]').allInnerTexts()).map((s) => s.trim());
  for (const name of LINEAGE) assert.ok(drawnAs(name, labels), `${name} not drawn; nodes: ${labels.join(', ')}`);
  // edges are the graph's SVG paths: raw→staged×3, raw→reference, staged/reference→matched, →customer orders
  const edges = await graph.locator('path').count();
  assert.ok(edges >= 10, `only ${edges} edges drawn`);
  for (const group of ['keycrm_raw', 'staged', 'matched', 'bimp_documents']) {
    assert.ok(await graph.getByText(group, { exact: true }).first().isVisible(), `group ${group}`);
  }
  await shot('lineage-bimp_customer_orders.png');
});

test('the global asset graph shows the stages as groups', async () => {
  await open('/asset-groups');
  for (const group of GROUPS) await page.getByText(group, { exact: true }).first().waitFor();
  await sleep(1000);
  await shot('asset-groups.png');
});

test('the Partitions tab shows the partition that failed in the outage; a re-run turns it green', async () => {
  await open('/assets/keycrm_orders_raw?view=partitions');
  await page.getByText(/Failed \(\d+\)/).first().waitFor();
  let counts = await statusCounts();
  assert.deepEqual([counts.failed, counts.materialized], [1, OK_DAYS.length], JSON.stringify(counts));
  await page.getByText(OUTAGE_DAY, { exact: true }).first().click();
  await page.getByText('demo-shop', { exact: true }).first().click();
  await page.getByText(`${OUTAGE_DAY}|demo-shop`).first().waitFor();
  await page.getByText(/failed, and did not materialize this asset/).first().waitFor(); // and which run did
  await sleep(1000);
  await shot('partitions-failed.png');

  // the outage is over: re-run the failed day (what "Materialize…" on the failed partition does)
  const rerun = keybimp('sync', 'demo-shop', '--from', OUTAGE_DAY, '--to', OUTAGE_DAY, '--quiet');
  assert.equal(rerun.code, 0, rerun.out);
  await open('/assets/keycrm_orders_raw?view=partitions');
  await waitFor('partition status after the re-run', async () => {
    counts = await statusCounts();
    return counts.failed === 0 && counts.materialized === OK_DAYS.length + 1;
  }, 60_000);
  await shot('partitions-after-rerun.png');
});
