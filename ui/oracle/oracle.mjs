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

import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, writeFileSync, mkdirSync, rmSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve, basename } from 'node:path'

import { launchBrowser, repo, startServer } from '../browser/support.mjs'
import { crafted } from './cases.mjs'

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

async function openEditor(browser, url, consoleErrors) {
  const page = await browser.newPage()
  page.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(msg.text())
  })
  page.on('pageerror', (err) => consoleErrors.push(String(err)))
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
    // The server's own settings (seeded by startServer: no tutorial) and its catalogue.
    server = await startServer({ omnigen: opts.omnigen, frontend, dataDir: join(scratch, 'data') })
    browser = await launchBrowser()
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
    await server?.stop()
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
