// A PNG saved by a run carries its workflow: run the default workflow from the editor (small, on the
// tiny model, with a recognisable instruction), empty the canvas, drop the saved PNG onto it, and the
// editor restores that graph with the values it was run with.

import assert from 'node:assert/strict'

import { describe } from '../support.mjs'

const INSTRUCTION = 'a lighthouse dropped back onto the canvas'

export async function run(ctx) {
  const page = await ctx.openEditor({ viewport: { width: 1400, height: 800 } })
  await page.evaluate(({ model, instruction }) => {
    const node = (type) => app.graph._nodes.find((n) => n.type === type)
    const set = (n, name, value) => { n.widgets.find((w) => w.name === name).value = value }
    set(node('LoadOmniGen'), 'model', model)
    set(node('BuildPrompt'), 'instruction', instruction)
    const sample = node('OmniGenSample')
    set(sample, 'width', 64)
    set(sample, 'height', 48)
    set(sample, 'steps', 3)
  }, { model: ctx.tinyModel, instruction: INSTRUCTION })
  await page.getByRole('button', { name: 'Run', exact: true }).click()

  // The saved file, once the history has it.
  let images = []
  for (let tries = 0; tries < 600 && images.length === 0; tries++) {
    await new Promise((done) => setTimeout(done, 200))
    const jobs = await (await fetch(`${ctx.server.url}/api/history`)).json()
    images = Object.values(jobs).flatMap((job) => Object.values(job.outputs ?? {}).flatMap((o) => o.images ?? []))
  }
  assert.equal(images.length, 1, 'the run saved one picture')
  const { filename, subfolder, type } = images[0]
  const query = new URLSearchParams({ filename, subfolder, type })
  const png = Buffer.from(await (await fetch(`${ctx.server.url}/api/view?${query}`)).arrayBuffer())
  assert.equal(png.subarray(1, 4).toString(), 'PNG')

  // Empty the canvas, then drop the PNG on it as a file from the desktop.
  await page.evaluate(() => app.graph.clear())
  assert.equal(await page.evaluate(() => app.graph._nodes.length), 0)
  const dataTransfer = await page.evaluateHandle(({ bytes, name }) => {
    const transfer = new DataTransfer()
    transfer.items.add(new File([Uint8Array.from(atob(bytes), (c) => c.charCodeAt(0))], name, { type: 'image/png' }))
    return transfer
  }, { bytes: png.toString('base64'), name: filename })
  await page.dispatchEvent('#graph-canvas', 'dragover', { dataTransfer })
  await page.dispatchEvent('#graph-canvas', 'drop', { dataTransfer })
  await page.waitForFunction(() => app.graph._nodes.length === 5, null, { timeout: 30_000 })

  const restored = await page.evaluate(() => {
    const node = (type) => app.graph._nodes.find((n) => n.type === type)
    const value = (n, name) => n.widgets.find((w) => w.name === name).value
    return {
      types: app.graph._nodes.map((n) => n.type).sort(),
      instruction: value(node('BuildPrompt'), 'instruction'),
      size: [value(node('OmniGenSample'), 'width'), value(node('OmniGenSample'), 'height')],
      links: app.graph.serialize().links.length
    }
  })
  assert.deepEqual(restored.types, ['BuildPrompt', 'DecodeVAE', 'LoadOmniGen', 'OmniGenSample', 'SaveImage'])
  assert.equal(restored.instruction, INSTRUCTION)
  assert.deepEqual(restored.size, [64, 48])
  assert.equal(restored.links, 5, 'its links came back too')
  await ctx.screenshot(page, 'editor_png_drop')
  await page.waitForTimeout(500)
  assert.equal(describe(ctx.consoleErrors(page)), '', 'console errors in the editor')
}
