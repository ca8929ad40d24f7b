// The oracle for UI-workflow conversion: ComfyUI's real frontend, in headless Chromium, served by
// `omnigen serve --front-end-root`. For every example graph in graphs/ and every crafted workflow in
// cases.mjs it records what the editor saves (`app.graph.serialize()`) and what it would queue
// (`(await app.graphToPrompt()).output` after loading that saved file back) as the fixture pair
// NAME.ui.json / NAME.api.json. tests/convert_fixtures.rs then checks that `omnigen convert` of each
// NAME.ui.json gives NAME.api.json, without a browser.
//
//   node ui/oracle/oracle.mjs [--omnigen BIN] [--frontend STATIC_DIR] [--out DIR] [--screenshot FILE.png]
//
// --screenshot saves the editor showing our text-to-image example (docs/ui.md uses one).
//
// Without --frontend, `omnigen frontend install` fetches the pinned frontend (pip download, sha256 checked)
// into a temporary data dir, which `omnigen serve` then serves. Needs /usr/bin/chromium (Debian: apt-get
// install -y chromium) and `npm install --prefix ui` for playwright-core.

import { spawn, execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, writeFileSync, mkdirSync, rmSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve, dirname, basename } from 'node:path'
import { fileURLToPath } from 'node:url'

import { chromium } from 'playwright-core'

import { crafted } from './cases.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const repo = resolve(here, '..', '..')
const CHROMIUM_ARGS = [
  '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'
]
// The editor's own settings for the run: no tutorial, no first-run template browser.
const SETTINGS = { 'Comfy.TutorialCompleted': true, 'Comfy.Workflow.ShowMissingModelsWarning': false }

function args() {
  const out = { omnigen: join(repo, 'target', 'debug', 'omnigen'), frontend: null, out: join(repo, 'tests', 'fixtures', 'workflows'), screenshot: null }
  const argv = process.argv.slice(2)
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '')
    if (!(key in out) || argv[i + 1] === undefined) throw new Error(`unknown or incomplete argument ${argv[i]}`)
    out[key] = resolve(argv[i + 1])
  }
  return out
}

/** The editor installed by `omnigen frontend install` into the scratch data dir. */
function installFrontend(omnigen, scratch) {
  execFileSync(omnigen, ['frontend', 'install', '--data-dir', join(scratch, 'data')], { stdio: ['ignore', 'ignore', 'inherit'] })
  return join(scratch, 'data', 'frontend')
}

/** Starts `omnigen serve` on a free port; resolves with its base URL. */
function serve(omnigen, frontend, scratch) {
  const child = spawn(omnigen, ['serve', '--port', '0', '--data-dir', join(scratch, 'data'), '--front-end-root', frontend], {
    stdio: ['ignore', 'inherit', 'pipe']
  })
  return new Promise((resolveUrl, reject) => {
    let seen = ''
    const timer = setTimeout(() => reject(new Error(`omnigen serve did not start:\n${seen}`)), 60_000)
    child.stderr.on('data', (chunk) => {
      seen += chunk
      const match = /on (http:\/\/\S+)/.exec(seen)
      if (match) {
        clearTimeout(timer)
        resolveUrl({ url: match[1], child })
      }
    })
    child.on('exit', (code) => reject(new Error(`omnigen serve exited with ${code}:\n${seen}`)))
  })
}

async function openEditor(browser, url, consoleErrors) {
  const page = await browser.newPage()
  page.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(msg.text())
  })
  page.on('pageerror', (err) => consoleErrors.push(String(err)))
  // The oracle brings its own editor settings (and answers their writes) so that it does not depend on
  // what the server stores.
  await page.route(/\/api\/settings(\/.*)?(\?.*)?$/, (route) =>
    route.request().method() === 'GET'
      ? route.fulfill({ contentType: 'application/json', body: JSON.stringify(SETTINGS) })
      : route.fulfill({ contentType: 'application/json', body: '{}' })
  )
  page.on('response', (res) => {
    if (res.status() >= 400) consoleErrors.push(`HTTP ${res.status()} ${res.request().method()} ${res.url()}`)
  })
  await page.goto(url + '/')
  try {
    await page.waitForFunction(
      () => window.app?.graph && window.LiteGraph?.registered_node_types?.SaveImage,
      null,
      { timeout: 120_000, polling: 250 }
    )
  } catch (err) {
    throw new Error(`the editor did not load: ${err.message}\n  ${consoleErrors.join('\n  ')}`)
  }
  return page
}

/** Saves the editor's current graph, loads that file back, and asks what it would queue. */
async function record(page, name) {
  const ui = await page.evaluate(() => app.graph.serialize())
  const api = await page.evaluate(async ({ ui, name }) => {
    await app.loadGraphData(ui, true, true, name)
    return (await app.graphToPrompt()).output
  }, { ui, name })
  return { ui, api }
}

function write(out, name, { ui, api }) {
  writeFileSync(join(out, `${name}.ui.json`), JSON.stringify(ui, null, 2) + '\n')
  writeFileSync(join(out, `${name}.api.json`), JSON.stringify(api, null, 2) + '\n')
}

async function main() {
  const opts = args()
  const scratch = mkdtempSync(join(tmpdir(), 'omnigen-oracle-'))
  let server
  let browser
  const failures = []
  try {
    const frontend = opts.frontend ?? installFrontend(opts.omnigen, scratch)
    if (!existsSync(join(frontend, 'index.html'))) throw new Error(`${frontend} has no index.html`)
    server = await serve(opts.omnigen, frontend, scratch)
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS })
    const consoleErrors = []
    const page = await openEditor(browser, server.url, consoleErrors)
    mkdirSync(opts.out, { recursive: true })

    const graphsDir = join(repo, 'graphs')
    const examples = Object.fromEntries(
      readdirSync(graphsDir)
        .filter((f) => f.endsWith('.json'))
        .map((f) => [basename(f, '.json'), JSON.parse(readFileSync(join(graphsDir, f), 'utf8'))])
    )
    const jobs = [
      ...Object.entries(examples).map(([name, api]) => ({
        name: `example_${name}`,
        run: () => page.evaluate(async ({ api, name }) => app.loadApiJson(api, name), { api, name })
      })),
      ...crafted.map((c) => ({ name: c.name, run: () => page.evaluate(c.edit, examples[c.base]) }))
    ]
    for (const job of jobs) {
      try {
        await job.run()
        write(opts.out, job.name, await record(page, job.name))
        console.log(`recorded ${job.name}`)
      } catch (err) {
        failures.push(`${job.name}: ${err.message.split('\n')[0]}`)
        console.error(`FAILED ${job.name}: ${err.message}`)
      }
    }
    if (opts.screenshot) {
      await page.evaluate(async (api) => app.loadApiJson(api, 'text_to_image'), examples.text_to_image)
      await page.setViewportSize({ width: 1400, height: 800 })
      await page.evaluate(() => app.canvas.ds && app.graph && app.canvas.fitViewToSelectionAnimated?.())
      await page.waitForTimeout(1500)
      await page.screenshot({ path: opts.screenshot })
    }
    const frontendVersion = await page.evaluate(() => window.__COMFYUI_FRONTEND_VERSION__ ?? app.graph.serialize().extra?.frontendVersion ?? 'unknown')
    writeFileSync(
      join(opts.out, 'ORACLE.md'),
      `# Conversion fixtures\n\nRecorded by \`node ui/oracle/oracle.mjs\` from ComfyUI frontend ${frontendVersion} in headless Chromium against \`omnigen serve --front-end-root\`: \`NAME.ui.json\` is \`app.graph.serialize()\`, \`NAME.api.json\` is \`(await app.graphToPrompt()).output\` after loading that file back. Do not edit by hand; re-run the oracle.\n`
    )
    if (consoleErrors.length) console.error(`console errors in the page:\n  ${consoleErrors.join('\n  ')}`)
  } finally {
    await browser?.close()
    server?.child.kill()
    rmSync(scratch, { recursive: true, force: true })
  }
  if (failures.length) {
    console.error(`\n${failures.length} case(s) failed:\n  ${failures.join('\n  ')}`)
    process.exit(1)
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
