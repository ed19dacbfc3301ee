// What the browser test runs against: the emulators (demo shop), `keybimp sync`, and `dagster dev`, each in a
// temporary folder of its own (DAGSTER_HOME, KEYBIMP_DATA, settings file) on free ports, so the test never
// meets another `dagster dev` or another test's data.  Every process is started in a session (process group)
// of its own and carries a marker variable; stop() ends the groups (SIGTERM, then SIGKILL) and then kills any
// process still carrying the marker (a grandchild that left the group), also when the test failed or was
// interrupted.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PYTHON = path.join(ROOT, '.venv', 'bin', 'python');
const DAGSTER = path.join(ROOT, '.venv', 'bin', 'dagster');
const MARKER = 'KEYBIMP_UI_TEST_RUN';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function freePort() {
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

/** Polls fn() every 500 ms until it returns a truthy value (returned), the deadline passes, or proc exits. */
export async function waitFor(what, fn, timeoutMs, proc) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    if (proc && proc.exitCode !== null) throw new Error(`${what}: the process exited (code ${proc.exitCode})`);
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      if (e.fatal) throw e;
      last = e;
    }
    await sleep(500);
  }
  throw new Error(`${what}: not ready after ${timeoutMs / 1000} s${last ? ` (last error: ${last.message})` : ''}`);
}

function postJson(url, body) {
  // a fresh connection per call: a kept-alive socket the server has since closed would fail the request
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = http.request(url, { method: 'POST', agent: false, timeout: 30_000,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: no answer in 30 s`)));
    req.on('error', reject);
    req.end(data);
  });
}

export class Stack {
  constructor() {
    this.procs = [];
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'keybimp-ui-'));
    this.stopped = false;
    // an interrupted test (Ctrl-C, CI's timeout) still ends what it started
    this.onSignal = (sig) => {
      this.killNow();
      if (!process.env.KEEP_TMP) fs.rmSync(this.tmp, { recursive: true, force: true });
      process.exit(sig === 'SIGINT' ? 130 : 143);
    };
    this.onExit = () => this.killNow();
    process.once('SIGINT', this.onSignal);
    process.once('SIGTERM', this.onSignal);
    process.once('exit', this.onExit);
  }

  log(name) { return path.join(this.tmp, `${name}.log`); }

  start(name, cmd, args) {
    const fd = fs.openSync(this.log(name), 'a');
    const proc = spawn(cmd, args, { cwd: ROOT, env: this.env, detached: true, stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    this.procs.push({ name, proc });
    return proc;
  }

  /** Settings file, instance and data folders, credentials; then the emulators with the demo shop. */
  async startEmulators({ orders = 600 } = {}) {
    const [kPort, bPort, k2Port] = [await freePort(), await freePort(), await freePort()];
    const demo = spawnSync(PYTHON, ['-c', 'from keybimp_pipeline.emulators import demo_shop as d; '
      + 'print(d.DEMO_KEYCRM_KEY); print(d.DEMO_BIMP_EMAIL); print(d.DEMO_BIMP_PASSWORD)'],
    { cwd: ROOT, encoding: 'utf8' }).stdout.trim().split('\n');
    if (demo.length !== 3) throw new Error('could not read the demo credentials');
    // the shipped example, pointed at this run's emulators
    const config = fs.readFileSync(path.join(ROOT, 'integrations.example.yaml'), 'utf8')
      .replaceAll('http://127.0.0.1:8801', `http://127.0.0.1:${kPort}`)
      .replaceAll('http://127.0.0.1:8802', `http://127.0.0.1:${bPort}`)
      .replaceAll('http://127.0.0.1:8803', `http://127.0.0.1:${k2Port}`);
    fs.writeFileSync(path.join(this.tmp, 'integrations.yaml'), config);
    const home = path.join(this.tmp, 'dagster_home');
    fs.mkdirSync(home);
    fs.copyFileSync(path.join(ROOT, 'dagster.yaml'), path.join(home, 'dagster.yaml'));
    this.env = {
      ...process.env, [MARKER]: this.tmp, DAGSTER_HOME: home, KEYBIMP_DATA: path.join(this.tmp, 'data'),
      KEYBIMP_CONFIG: path.join(this.tmp, 'integrations.yaml'), KEYCRM_KEY_DEMO_SHOP: demo[0],
      BIMP_EMAIL: demo[1], BIMP_PASSWORD: demo[2],
      KEYCRM_URL: `http://127.0.0.1:${kPort}`, BIMP_URL: `http://127.0.0.1:${bPort}`,
    };
    fs.mkdirSync(this.env.KEYBIMP_DATA);
    const emulators = this.start('emulators', PYTHON, ['-m', 'keybimp_pipeline.emulators.serve', '--demo',
      '--orders', String(orders), '--keycrm-port', String(kPort), '--bimp-port', String(bPort),
      '--keycrm2-port', String(k2Port)]);
    await waitFor('emulators', async () => (await portOpen(kPort)) && (await portOpen(bPort)), 120_000, emulators);
  }

  /** `keybimp ARGS…` headless, as a person types it; {code, out}. */
  keybimp(...args) {
    const r = spawnSync(PYTHON, ['-W', 'ignore', '-m', 'keybimp_pipeline.cli', ...args],
      { cwd: ROOT, env: this.env, encoding: 'utf8', timeout: 600_000, killSignal: 'SIGKILL' });
    return { code: r.status, out: `${r.stdout}\n${r.stderr}${r.error ? `\n${r.error}` : ''}` };
  }

  /** Emulator faults on both services ({} = none). */
  async faults(body) {
    for (const url of [this.env.KEYCRM_URL, this.env.BIMP_URL]) {
      const r = await postJson(`${url}/__admin/faults`, body);
      if (r.status !== 200) throw new Error(`faults on ${url}: HTTP ${r.status} ${r.text}`);
    }
  }

  /** `dagster dev` on a free port; resolves once the code location has loaded and its asset graph answers. */
  async startDagster({ timeoutMs = 300_000 } = {}) {
    const port = await freePort();
    this.web = `http://127.0.0.1:${port}`;
    const dagster = this.start('dagster', DAGSTER, ['dev', '-w', 'workspace.yaml', '-h', '127.0.0.1',
      '-p', String(port)]);
    const deadline = Date.now() + timeoutMs;
    const left = () => Math.max(deadline - Date.now(), 1_000);
    await waitFor('dagster dev: GraphQL { version }', async () => (await this.graphql('{ version }')).version,
      left(), dagster);
    await waitFor('dagster dev: the code location "keybimp" loaded', async () => {
      const data = await this.graphql(`{ workspaceOrError { __typename ... on Workspace { locationEntries {
        name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }`);
      const entry = (data.workspaceOrError.locationEntries || []).find((e) => e.name === 'keybimp');
      if (!entry || entry.loadStatus !== 'LOADED') return false;
      const loc = entry.locationOrLoadError;
      if (loc && loc.__typename === 'PythonError') {
        // no point waiting: the UI would show an empty asset graph until the timeout
        throw Object.assign(new Error(`the code location "keybimp" failed to load: ${loc.message}`), { fatal: true });
      }
      return true;
    }, left(), dagster);
    await waitFor('dagster dev: the asset graph has keycrm_orders_raw', async () => {
      const data = await this.graphql('{ assetNodes { assetKey { path } } }');
      return data.assetNodes.some((n) => n.assetKey.path.join('/') === 'keycrm_orders_raw');
    }, left(), dagster);
    // the first-visit dialog (newsletter sign-up, "Skip") is shown until the instance records it was seen
    await this.graphql('mutation { setNuxSeen }');
    const nux = await this.graphql('{ shouldShowNux }');
    if (nux.shouldShowNux) throw new Error('dagster dev still wants to show its first-visit dialog');
    return dagster;
  }

  async graphql(query, variables = {}) {
    const r = await postJson(`${this.web}/graphql`, { query, variables });
    let body;
    try { body = JSON.parse(r.text); } catch { throw new Error(`GraphQL: HTTP ${r.status} ${r.text.slice(0, 200)}`); }
    if (body.errors) throw new Error(`GraphQL: ${JSON.stringify(body.errors).slice(0, 500)}`);
    return body.data;
  }

  tail(name, lines = 60) {
    try {
      const text = fs.readFileSync(this.log(name), 'utf8').split('\n');
      return text.slice(-lines).join('\n');
    } catch (e) { return `(no ${name} log: ${e.message})`; }
  }

  /** Processes still carrying this run's marker (pid list), found through /proc. */
  marked() {
    const out = [];
    let pids = [];
    try { pids = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)); } catch { return out; }
    const needle = `${MARKER}=${this.tmp}\0`;
    for (const pid of pids) {
      if (Number(pid) === process.pid) continue;
      try { if (fs.readFileSync(`/proc/${pid}/environ`, 'latin1').includes(needle)) out.push(Number(pid)); } catch { /* gone or not ours */ }
    }
    return out;
  }

  killNow() {
    for (const { proc } of this.procs) {
      try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* gone */ }
    }
    for (const pid of this.marked()) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
  }

  /** Ends everything this run started; returns the pids that had to be killed one by one (should be none). */
  async stop({ keepTmp = false } = {}) {
    if (this.stopped) return [];
    this.stopped = true;
    for (const { proc } of [...this.procs].reverse()) {
      if (proc.exitCode !== null || proc.signalCode !== null) continue;
      try { process.kill(-proc.pid, 'SIGTERM'); } catch { continue; }
      const done = new Promise((r) => proc.once('exit', r));
      if (await Promise.race([done.then(() => true), sleep(30_000).then(() => false)])) continue;
      try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* gone */ }
    }
    // a process group can outlive its leader a moment (dagster dev's daemon, code server, run workers)
    const deadline = Date.now() + 15_000;
    while (this.procs.some(({ proc }) => groupAlive(proc.pid)) && Date.now() < deadline) await sleep(250);
    for (const { proc } of this.procs) {
      try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* gone */ }
    }
    // SIGKILL is delivered, not awaited: a group member killed just now is still in /proc a moment, and is no
    // stray; only what carries the marker once the groups are gone left its group
    const killed = Date.now() + 10_000;
    while (this.procs.some(({ proc }) => groupAlive(proc.pid)) && Date.now() < killed) await sleep(100);
    const strays = this.marked();
    for (const pid of strays) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
    process.removeListener('SIGINT', this.onSignal);
    process.removeListener('SIGTERM', this.onSignal);
    process.removeListener('exit', this.onExit);
    if (!keepTmp) fs.rmSync(this.tmp, { recursive: true, force: true });
    return strays;
  }
}

function groupAlive(pgid) {
  try { process.kill(-pgid, 0); return true; } catch { return false; }
}
