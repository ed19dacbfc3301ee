// The keybimp Dagster UI as a person sees it: headless Debian Chromium driven by playwright-core.
//
// Setup (stack.mjs): emulators with the demo shop on free ports, a temporary DAGSTER_HOME / KEYBIMP_DATA /
// settings file; `keybimp sync` of two days (one run over the range); a third day synced during an API outage
// (emulator faults: every request 503), so that partition fails; then `dagster dev` on a free port, ready when
// its GraphQL endpoint answers, the code location has loaded and the asset graph holds the order assets.  The
// first-visit dialog (newsletter sign-up with "Skip") is marked seen through the instance before the browser
// opens, so it never covers the page.
//
// In the browser: the lineage from raw KeyCRM orders to Bimp customer orders is drawn; the global asset
// lineage shows the stages as groups; the Partitions tabs of bimp_customer_orders and keycrm_orders_raw count
// 1 failed and 2 materialised days; with only *Failed* ticked, keycrm_orders_raw lists that day and
// integration alone, and its detail names the run that failed; the failed day is re-run from there, as the
// README says: the run's link → its page → Re-execute all (*) (the whole sync_orders run of that day, though
// `keybimp sync` started it; an asset's own Materialize… would re-run that asset only), the run succeeds,
// and the Partitions tabs then show 0 failed / 3 materialised for the first and the Bimp customer orders.
//
// Screenshots go to ../screenshots/ (git-ignored).  When a step fails, its screenshot, the page's HTML and the
// tail of dagster dev's log are saved/printed, so the CI log says why.  Every process started is ended at the
// end, whether the test passed, failed or was interrupted (stack.mjs).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { ROOT, Stack, sleep, waitFor } from './stack.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SHOTS = path.join(ROOT, 'screenshots');
const OK_DAYS = ['2026-11-29', '2026-11-30'];
const OUTAGE_DAY = '2026-11-28';
const LINEAGE = ['keycrm_orders_raw', 'reference_data', 'staged_orders', 'staged_order_lines', 'staged_buyers',
  'matched_customers', 'matched_products', 'bimp_customer_orders'];
const GROUPS = ['keycrm_raw', 'reference', 'staged', 'matched', 'bimp_documents', 'keycrm_uploads'];
// Bounded waits, generous for a busy 2-core machine.  Each wait names what it waited for when it gives up.
const ACTION = 60_000; // one click, one element to appear
const NAVIGATION = 120_000; // a page load
const RUN = 420_000; // a run launched from the UI, queued and executed
const TEST = 900_000; // one test as a whole

const stack = new Stack();
const started = Date.now();
let browser, page;

const secs = (t0) => `${((Date.now() - t0) / 1000).toFixed(1)} s`;

function mark(what, t0) { console.log(`# ${what}: ${secs(t0)} (load ${loadavg()})`); }

function loadavg() {
  try { return fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '); } catch { return '?'; }
}

/** What a failed step leaves behind: screenshot, the page's HTML, dagster dev's and the emulators' log tails. */
async function diagnose(name, error) {
  const base = `failure-${name}`;
  console.error(`\n===== ${name} failed: ${error && error.message}`);
  if (page) {
    try {
      console.error(`page: ${page.url()}`);
      await page.screenshot({ path: path.join(SHOTS, `${base}.png`), timeout: 30_000 });
      fs.writeFileSync(path.join(SHOTS, `${base}.html`), await page.content());
      console.error(`saved ${path.relative(ROOT, path.join(SHOTS, base))}.png and .html`);
    } catch (e) { console.error(`(no screenshot: ${e.message})`); }
  }
  if (stack.web) {
    try {
      const data = await stack.graphql(`{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
        locationOrLoadError { __typename ... on PythonError { message } } } } } }`);
      console.error(`code locations: ${JSON.stringify(data.workspaceOrError.locationEntries)}`);
    } catch (e) { console.error(`(GraphQL: ${e.message})`); }
  }
  console.error(`----- dagster dev log (tail) -----\n${stack.tail('dagster', 80)}`);
  console.error(`----- emulators log (tail) -----\n${stack.tail('emulators', 20)}`);
  console.error(`===== (load ${loadavg()})\n`);
}

/** A test body whose failure is explained (diagnose) before it is reported. */
function step(name, fn) {
  return async () => {
    const t0 = Date.now();
    try {
      await fn();
    } catch (e) {
      await diagnose(name, e);
      throw e;
    } finally {
      mark(name, t0);
    }
  };
}

async function noDialogCovers() {
  // the first-visit dialog was marked seen before the browser opened: it must not be there
  assert.equal(await page.getByRole('button', { name: 'Skip' }).count(), 0, 'a first-visit dialog covers the page');
}

async function shot(name) {
  await noDialogCovers();
  const file = path.join(SHOTS, name);
  await page.screenshot({ path: file });
  console.log(`# screenshot: ${path.relative(ROOT, file)}`);
}

async function open(url) {
  await page.goto(`${stack.web}${url}`, { waitUntil: 'domcontentloaded' });
}

/** Waits until an element's box stops moving (the graph's first layout and zoom-to-fit), bounded. */
async function settled(locator) {
  let last = '';
  await waitFor('the graph to settle', async () => {
    const box = JSON.stringify(await locator.boundingBox());
    const same = box === last;
    last = box;
    return same && box !== 'null';
  }, ACTION);
}

async function statusCounts() {
  const text = await page.locator('body').innerText();
  const count = (label) => Number((text.match(new RegExp(`${label} \\((\\d+)\\)`)) || [])[1]);
  return { failed: count('Failed'), materialized: count('Materialized'), missing: count('Missing') };
}

/** Opens an asset's Partitions tab until it shows the expected counts (the page polls; a reload now and then). */
async function partitionCounts(asset, failed, materialized) {
  let counts;
  await waitFor(`${asset}: Failed (${failed}), Materialized (${materialized})`, async () => {
    await open(`/assets/${asset}?view=partitions`);
    await page.getByText(/Failed \(\d+\)/).first().waitFor();
    for (let i = 0; i < 5; i += 1) {
      counts = await statusCounts();
      if (counts.failed === failed && counts.materialized === materialized) return true;
      await sleep(1_000);
    }
    console.log(`# ${asset} shows ${JSON.stringify(counts)}; reloading`);
    return false;
  }, NAVIGATION);
  return counts;
}

/** The run whose id starts with `prefix`, once it has ended (status, tags as an object), read through GraphQL. */
async function runEnded(prefix, timeoutMs) {
  return waitFor(`run ${prefix} to end`, async () => {
    const data = await stack.graphql(`{ runsOrError(limit: 50) { ... on Runs { results { runId status
      tags { key value } } } } }`);
    const r = data.runsOrError.results.find((x) => x.runId.startsWith(prefix));
    if (!r || !['SUCCESS', 'FAILURE', 'CANCELED'].includes(r.status)) return false;
    return { ...r, tags: Object.fromEntries(r.tags.map((t) => [t.key, t.value])) };
  }, timeoutMs);
}

function drawnAs(name, labels) {
  // narrow nodes show long names shortened in the middle ("bimp_custo…_orders")
  return labels.some((l) => l === name || (l.includes('…') && name.startsWith(l.split('…')[0])
    && name.endsWith(l.split('…').pop())));
}

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  let t0 = Date.now();
  try {
    await stack.startEmulators();
    mark('emulators up', t0);
    t0 = Date.now();
    const ok = stack.keybimp('sync', 'demo-shop', '--from', OK_DAYS[0], '--to', OK_DAYS[1], '--quiet');
    assert.equal(ok.code, 0, ok.out);
    await stack.faults({ fail_ratio: 1.0, fail_status: 503, retry_after_s: 0 }); // the APIs are down
    const down = stack.keybimp('sync', 'demo-shop', '--from', OUTAGE_DAY, '--to', OUTAGE_DAY, '--quiet');
    assert.equal(down.code, 1, `a sync during the outage must fail:\n${down.out}`);
    await stack.faults({}); // and back
    mark('keybimp sync (2 days ok, 1 day in the outage)', t0);
    t0 = Date.now();
    await stack.startDagster();
    mark(`dagster dev ready at ${stack.web}`, t0);

    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
    const context = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
    // the browser's own record of the first-visit dialog too (the UI's local storage key, as "Skip" sets it)
    await context.addInitScript(() => { window.localStorage.setItem('communityNux', '"1"'); });
    page = await context.newPage();
    page.setDefaultTimeout(ACTION);
    page.setDefaultNavigationTimeout(NAVIGATION);
  } catch (e) {
    await diagnose('setup', e);
    throw e;
  }
}, { timeout: TEST });

after(async () => {
  if (browser) await browser.close().catch(() => {});
  const t0 = Date.now();
  const strays = await stack.stop({ keepTmp: Boolean(process.env.KEEP_TMP) });
  mark('every process ended', t0);
  if (strays.length) console.log(`# killed ${strays.length} process(es) that had left their group: ${strays}`);
  if (process.env.KEEP_TMP) console.log(`# kept ${stack.tmp}`);
  mark('whole browser test', started);
}, { timeout: 120_000 });

test('the lineage raw KeyCRM orders → staged → matched → Bimp customer orders is drawn', { timeout: TEST },
  step('lineage', async () => {
    await open('/assets/bimp_customer_orders?view=lineage&lineageScope=upstream&lineageDepth=6');
    const graph = page.locator('svg[class*="sVGContainer"]').first();
    const nodes = graph.locator('[class*="AssetNode_assetName"]');
    let labels = [];
    let edges = 0;
    // edges are the graph's SVG paths (raw→staged×3, raw→reference, staged/reference→matched, →customer
    // orders: 10 at least), drawn a moment after the nodes
    await waitFor('every node and edge of the lineage drawn', async () => {
      labels = (await nodes.allInnerTexts()).map((s) => s.trim());
      edges = await graph.locator('path').count();
      return LINEAGE.every((name) => drawnAs(name, labels)) && edges >= 10;
    }, NAVIGATION).catch((e) => { throw new Error(`${e.message}; nodes: ${labels.join(', ')}; edges: ${edges}`); });
    for (const group of ['keycrm_raw', 'staged', 'matched', 'bimp_documents']) {
      assert.ok(await graph.getByText(group, { exact: true }).first().isVisible(), `group ${group}`);
    }
    await settled(graph);
    await shot('lineage-bimp_customer_orders.png');
  }));

test('the global asset lineage shows the stages as groups', { timeout: TEST }, step('asset-groups', async () => {
  await open('/asset-groups');
  for (const group of GROUPS) await page.getByText(group, { exact: true }).first().waitFor();
  // the groups are drawn collapsed, one box per stage, linked in lineage order
  await settled(page.getByText('bimp_documents', { exact: true }).last());
  await shot('asset-groups.png');
}));

test('the Partitions tab shows the day that failed in the outage; re-run from the UI, it turns green',
  { timeout: TEST }, step('partitions', async () => {
    // the run that failed in the outage planned every order asset: the last of them, the Bimp customer
    // orders, counts that day as failed too
    let counts = await partitionCounts('bimp_customer_orders', 1, OK_DAYS.length);
    assert.deepEqual([counts.failed, counts.materialized], [1, OK_DAYS.length], JSON.stringify(counts));
    counts = await partitionCounts('keycrm_orders_raw', 1, OK_DAYS.length);
    assert.deepEqual([counts.failed, counts.materialized], [1, OK_DAYS.length], JSON.stringify(counts));
    // only the failed partitions: untick the other statuses; the lists then hold that day and integration alone
    for (const status of ['Materialized', 'Materializing', 'Missing']) {
      await page.getByText(new RegExp(`^${status} \\(\\d+\\)$`)).first().click();
    }
    await page.getByText('1 Partitions Selected', { exact: true }).waitFor();
    assert.match(page.url(), /[?&]status=FAILED(&|$)/);
    await page.getByText(OUTAGE_DAY, { exact: true }).first().waitFor();
    for (const day of OK_DAYS) {
      assert.equal(await page.getByText(day, { exact: true }).count(), 0, `${day} listed among the failed`);
    }
    // the failed partition: its day, then its integration; the detail names the run that failed
    await page.getByText(OUTAGE_DAY, { exact: true }).first().click();
    await page.getByText('demo-shop', { exact: true }).first().click();
    await page.getByText(`${OUTAGE_DAY}|demo-shop`).first().waitFor();
    const failedText = await page.getByText(/Run [0-9a-f]{8} failed, and did not materialize this asset/).first()
      .innerText();
    const failedRun = await runEnded(failedText.match(/Run ([0-9a-f]{8})/)[1], ACTION);
    assert.equal(failedRun.status, 'FAILURE', `the run the Partitions tab names: ${JSON.stringify(failedRun)}`);
    // the outage's `keybimp sync` of that day
    assert.equal(failedRun.tags['keybimp/trigger'], 'cli', JSON.stringify(failedRun.tags));
    assert.equal(failedRun.tags['dagster/partition'], `${OUTAGE_DAY}|demo-shop`, JSON.stringify(failedRun.tags));
    await shot('partitions-failed.png');

    // the outage is over: re-run that day's whole sync (every order asset, not only the raw one) from the
    // Partitions tab, as a person does it: the failed run's link → its page → Re-execute all (*)
    const t0 = Date.now();
    await page.locator(`a[href="/runs/${failedRun.runId}"]`).first().click();
    await page.getByText('RUN_FAILURE', { exact: true }).first().waitFor(); // its event log has loaded
    const reexecute = page.getByRole('button', { name: 'Re-execute all (*)' });
    await reexecute.waitFor();
    assert.equal(await reexecute.isEnabled(), true, 'Re-execute is enabled for a run of keybimp sync');
    await shot('rerun-from-failed-run.png');
    await reexecute.click();
    await page.waitForURL((url) => /^\/runs\/[0-9a-f-]{36}$/.test(url.pathname)
      && !url.pathname.endsWith(failedRun.runId), { timeout: ACTION });
    const runId = page.url().match(/\/runs\/([0-9a-f-]{36})/)[1];
    console.log(`# re-executed ${failedRun.runId.slice(0, 8)} as run ${runId.slice(0, 8)}`);

    // the run, queued by the instance's coordinator, picked up by the daemon, executed: wait for it to end
    const run = await runEnded(runId, RUN);
    assert.equal(run.status, 'SUCCESS', `run ${run.runId} ended ${run.status}`);
    assert.equal(run.tags['dagster/partition'], `${OUTAGE_DAY}|demo-shop`, JSON.stringify(run.tags));
    assert.equal(run.tags['dagster/parent_run_id'], failedRun.runId, JSON.stringify(run.tags));
    mark(`UI re-run of ${OUTAGE_DAY} (launch → success)`, t0);
    await open(`/runs/${run.runId}`);
    await page.getByText('Success', { exact: true }).first().waitFor();
    await page.getByText('RUN_SUCCESS', { exact: true }).first().waitFor(); // its event log has loaded
    await shot('rerun-run.png');

    // and what the Partitions tabs say now, read from the pages: the first and the Bimp customer orders
    counts = await partitionCounts('keycrm_orders_raw', 0, OK_DAYS.length + 1);
    assert.deepEqual([counts.failed, counts.materialized], [0, OK_DAYS.length + 1], JSON.stringify(counts));
    await shot('partitions-after-rerun.png');
    counts = await partitionCounts('bimp_customer_orders', 0, OK_DAYS.length + 1);
    assert.deepEqual([counts.failed, counts.materialized], [0, OK_DAYS.length + 1], JSON.stringify(counts));
  }));
