// The editor opens on our text-to-image workflow (not ComfyUI's default graph), offers our templates,
// and runs one: the text-to-image template from the template store (`?template=…&source=omnigen`, the
// editor's own loader), pointed at the tiny model, small and short, queued with the Run button. While it
// runs the editor marks the running node and the sampler's progress bar moves; the picture appears on
// SaveImage and in the job history panel.

import assert from 'node:assert/strict'

import { describe } from '../support.mjs'

/** Records, in the page, which node the editor shows as running and the progress it draws. */
function watchExecution() {
  window.__seen = { running: new Set(), progress: [] }
  window.__timer = setInterval(() => {
    const running = app.runningNodeId
    if (running != null) window.__seen.running.add(String(running))
    for (const node of app.graph._nodes) {
      if (typeof node.progress === 'number') window.__seen.progress.push([String(node.id), node.progress])
    }
  }, 20)
}

export async function run(ctx) {
  const page = await ctx.openEditor({ viewport: { width: 1400, height: 800 } })

  // The default graph is ours.
  const types = await page.evaluate(() => app.graph._nodes.map((n) => n.type).sort())
  assert.deepEqual(types, ['BuildPrompt', 'DecodeVAE', 'LoadOmniGen', 'OmniGenSample', 'SaveImage'])

  // Our nodes' widgets: numbers with their ranges, multiline text, combos, the seed's control.
  const widgets = await page.evaluate(() => {
    const of = (type) => Object.fromEntries(app.graph._nodes.find((n) => n.type === type).widgets.map((w) => [w.name, { type: w.type, options: w.options }]))
    return { sample: of('OmniGenSample'), prompt: of('BuildPrompt'), load: of('LoadOmniGen') }
  })
  assert.equal(widgets.sample.steps.type, 'number')
  assert.ok(widgets.sample.width.options.min > 0 && widgets.sample.width.options.max >= 1024, JSON.stringify(widgets.sample.width))
  assert.equal(widgets.sample.kv_cache.type, 'combo')
  assert.ok(widgets.sample.control_after_generate, 'the seed has control_after_generate')
  assert.equal(widgets.prompt.instruction.type, 'customtext', 'the instruction is multiline')
  assert.equal(widgets.load.dtype.type, 'combo')

  // The template browser's store lists our templates.
  const templates = await (await fetch(`${ctx.server.url}/api/workflow_templates`)).json()
  assert.ok(templates.omnigen.includes('text_to_image'), JSON.stringify(templates))
  await page.evaluate(() => app.extensionManager.command.execute('Comfy.BrowseTemplates'))
  await page.getByText('text_to_image', { exact: true }).first().waitFor({ timeout: 30_000 })
  await ctx.screenshot(page, 'editor_templates')
  await page.keyboard.press('Escape')

  // Open the template the way a link to it does, then make it small.
  await page.goto(`${ctx.server.url}/?template=text_to_image&source=omnigen`)
  await page.waitForFunction(() => window.app?.graph?._nodes?.some((n) => n.type === 'OmniGenSample') && !location.search.includes('template='), null, { timeout: 60_000 })
  await page.evaluate((model) => {
    const node = (type) => app.graph._nodes.find((n) => n.type === type)
    const set = (n, name, value) => { n.widgets.find((w) => w.name === name).value = value }
    set(node('LoadOmniGen'), 'model', model)
    const sample = node('OmniGenSample')
    set(sample, 'width', 64)
    set(sample, 'height', 48)
    set(sample, 'steps', 200)
    set(sample, 'control_after_generate', 'fixed')
    app.graph.setDirtyCanvas(true, true)
  }, ctx.tinyModel)
  const sampleId = await page.evaluate(() => String(app.graph._nodes.find((n) => n.type === 'OmniGenSample').id))
  const saveId = await page.evaluate(() => String(app.graph._nodes.find((n) => n.type === 'SaveImage').id))

  const outputs = []
  page.on('response', (res) => {
    if (res.url().includes('/api/view') && res.url().includes('type=output') && res.status() === 200) outputs.push(res.url())
  })
  await page.evaluate(watchExecution)
  await page.getByRole('button', { name: 'Run', exact: true }).click()
  await page.waitForFunction((id) => app.graph.getNodeById(Number(id))?.imgs?.length > 0, saveId, { timeout: 180_000, polling: 100 })
  await ctx.screenshot(page, 'editor_text_to_image')
  const seen = await page.evaluate(() => {
    clearInterval(window.__timer)
    return { running: [...window.__seen.running], progress: window.__seen.progress }
  })
  assert.ok(seen.running.includes(sampleId), `the sampler was never shown running: ${JSON.stringify(seen)}`)
  const sampler = [...new Set(seen.progress.filter(([id]) => id === sampleId).map(([, p]) => p))]
  assert.ok(sampler.length >= 2 && sampler.some((p) => p > 0 && p < 1), `the sampler's progress bar did not move: ${JSON.stringify(sampler)}`)
  assert.ok(outputs.length > 0, 'the saved picture was never fetched')

  // The job history panel shows the picture too.
  await page.evaluate(() => app.extensionManager.sidebarTab.toggleSidebarTab('job-history'))
  await page.waitForSelector('img[src*="type=output"]', { timeout: 30_000 })
  await ctx.screenshot(page, 'editor_job_history')

  await page.waitForTimeout(500)
  // Navigating to the template link cancels the first page's polls in flight: not a failure.
  const cancelled = (e) => e.text === 'request failed: net::ERR_ABORTED'
  assert.equal(describe(ctx.consoleErrors(page).filter((e) => !cancelled(e))), '', 'console errors in the editor')
}
