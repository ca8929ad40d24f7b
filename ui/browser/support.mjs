// What every browser scenario stands on: Debian's Chromium driven by playwright-core, a fresh
// `omnigen serve` per scenario (its own temporary data dir, the installed editor, started in the repo
// root so the tiny model is at a relative path), and console errors with the offline noise filtered out.

import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

import { chromium } from 'playwright-core'

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')

/** The tiny random-weight OmniGen model, relative to the repo root where the server runs. */
export const TINY_MODEL = 'model/tests/fixtures/tiny'

// server-notes.md: Debian's chromium, headless, and nothing that reaches out to the network.
const CHROMIUM_ARGS = [
  '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'
]

// The editor's settings for a test run: no tutorial, no first-run template browser, no missing-model toast.
const EDITOR_SETTINGS = {
  'Comfy.TutorialCompleted': true,
  'Comfy.Workflow.ShowMissingModelsWarning': false
}

// Requests the 1.58 editor makes that may fail here without anything being wrong (server-notes.md):
// external hosts it cannot reach offline, and lookups whose 404 means "none".
const OFFLINE_NOISE = [
  /api\.comfy\.org/,
  /ERR_NAME_NOT_RESOLVED/,
  /ERR_INTERNET_DISCONNECTED/,
  /\/user\.css(\?|$)/,
  /\/api\/userdata\/user\.css/,
  /\/api\/i18n/,
  /\/api\/userdata\/comfy\.templates\.json/,
  /\/api\/userdata\?dir=(subgraphs|workflows)/,
  /\/api\/global_subgraphs/,
  /\/api\/experiment\/models/
]

/** True when a console error is one of the expected offline ones. */
export function isOfflineNoise(error) {
  return OFFLINE_NOISE.some((pattern) => pattern.test(error.text) || pattern.test(error.url ?? ''))
}

export async function launchBrowser() {
  return chromium.launch({ executablePath: process.env.OMNIGEN_CHROMIUM ?? '/usr/bin/chromium', args: CHROMIUM_ARGS })
}

/**
 * `omnigen serve --port 0` on `dataDir` (created with the editor settings seeded), serving the editor
 * from `frontend`; resolves once its banner names the address.
 */
export function startServer({ omnigen, frontend, dataDir, extraArgs = [] }) {
  const userDir = join(dataDir, 'user', 'default')
  mkdirSync(userDir, { recursive: true })
  const settings = join(userDir, 'comfy.settings.json')
  if (!existsSync(settings)) writeFileSync(settings, JSON.stringify(EDITOR_SETTINGS)) // a restart keeps what it finds
  const args = ['serve', '--port', '0', '--data-dir', dataDir]
  if (frontend) args.push('--front-end-root', frontend)
  args.push(...extraArgs)
  const child = spawn(omnigen, args, { cwd: repo, stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  return new Promise((resolveServer, reject) => {
    const timer = setTimeout(() => reject(new Error(`omnigen serve did not start in 60 s:\n${log}`)), 60_000)
    child.stderr.on('data', (chunk) => {
      log += chunk
      // The address is whole once whitespace follows it (stderr may arrive mid-line).
      const match = /on (http:\/\/\S+)\s/.exec(log)
      if (match && timer) {
        clearTimeout(timer)
        resolveServer({
          url: match[1],
          dataDir,
          inputDir: join(dataDir, 'input'),
          outputDir: join(dataDir, 'output'),
          log: () => log,
          stop: () => stopChild(child)
        })
      }
    })
    child.on('exit', (code) => reject(new Error(`omnigen serve exited with ${code}:\n${log}`)))
  })
}

function stopChild(child) {
  if (child.exitCode !== null) return Promise.resolve()
  return new Promise((done) => {
    child.once('exit', () => done())
    child.kill('SIGTERM')
    setTimeout(() => child.kill('SIGKILL'), 10_000).unref()
  })
}

/**
 * The context a scenario's `run(ctx)` gets (ui/browser/README in docs/ui.md): the browser, a fresh
 * server, and page helpers that record console errors.
 */
export async function makeContext({ browser, omnigen, frontend, out, name }) {
  const scratch = mkdtempSync(join(tmpdir(), `omnigen-browser-${name}-`))
  const dataDir = join(scratch, 'data')
  const errors = new WeakMap()
  const pages = []
  const ctx = {
    browser,
    repo,
    tinyModel: TINY_MODEL,
    server: await startServer({ omnigen, frontend, dataDir }),

    /** A page on `url + path` whose console errors are recorded. */
    async openPage(path = '/', { viewport } = {}) {
      const page = await browser.newPage(viewport ? { viewport } : {})
      pages.push(page)
      const seen = []
      errors.set(page, seen)
      page.on('console', (msg) => {
        if (msg.type() === 'error') seen.push({ text: msg.text(), url: msg.location()?.url })
      })
      page.on('pageerror', (err) => seen.push({ text: String(err.stack ?? err) }))
      page.on('response', (res) => {
        if (res.status() >= 400) seen.push({ text: `HTTP ${res.status()} ${res.request().method()}`, url: res.url() })
      })
      page.on('requestfailed', (req) => seen.push({ text: `request failed: ${req.failure()?.errorText}`, url: req.url() }))
      await page.goto(ctx.server.url + path)
      return page
    },

    /** The editor on `/`, once its graph and our node types are there. */
    async openEditor(options) {
      const page = await ctx.openPage('/', options)
      try {
        await page.waitForFunction(
          () => window.app?.graph && window.LiteGraph?.registered_node_types?.OmniGenSample,
          null,
          { timeout: 120_000, polling: 250 }
        )
      } catch (err) {
        throw new Error(`the editor did not load: ${err.message}\n  ${describe(ctx.consoleErrors(page))}`)
      }
      return page
    },

    /** The console errors of `page` that are not offline noise. */
    consoleErrors(page) {
      return (errors.get(page) ?? []).filter((e) => !isOfflineNoise(e))
    },

    /** Saves a screenshot of `page` as OUT/NAME.png; returns its path. */
    async screenshot(page, shot) {
      mkdirSync(out, { recursive: true })
      const path = join(out, `${shot}.png`)
      await page.screenshot({ path })
      return path
    },

    /**
     * Stops the server and starts it again on the same data dir (persistence checks), with `extraArgs`
     * for `omnigen serve` (e.g. `--test-nodes`).
     */
    async restartServer({ extraArgs = [] } = {}) {
      await ctx.server.stop()
      ctx.server = await startServer({ omnigen, frontend, dataDir, extraArgs })
      return ctx.server
    },

    async close() {
      for (const page of pages) await page.close().catch(() => {})
      await ctx.server.stop()
      rmSync(scratch, { recursive: true, force: true })
    }
  }
  return ctx
}

/** Console errors as lines for a failure message. */
export function describe(errors) {
  return errors.map((e) => (e.url ? `${e.text} (${e.url})` : e.text)).join('\n  ')
}
