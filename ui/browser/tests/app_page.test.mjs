// The app page on a phone-sized screen: pick the text-to-image example, point it at the tiny model, fill
// the form, run; the picture appears in the gallery; "New seed" runs it again with another seed; a
// result PNG opened through the file picker gives its inputs back. Screenshots at 390×844 and 1280×900.

import assert from 'node:assert/strict'

import { describe } from '../support.mjs'
import { applyToPrompt, applyToWorkflow, fieldsOf, parseValue } from '../../../server/src/app/form.js'

const PHONE = { width: 390, height: 844 }
const WAIT = { timeout: 180_000 }

/** The form control of `title · name` (each carries its label in data-label). */
function field(page, title, name) {
  return page.locator(`[data-label="${title} · ${name}"]`)
}

async function history(ctx) {
  return (await fetch(`${ctx.server.url}/api/history`)).json()
}

/** The form rules without a browser: both combo shapes, roles, ranges, and edits into the workflow. */
function checkFormRules() {
  const catalogue = {
    Gen: { input: { required: {
      seed: ['INT', { min: 0, max: 100 }],
      mode: [['a', 'b'], {}],
      size: ['COMBO', { options: ['s', 'l'] }],
      text: ['STRING', { multiline: true }],
      image: ['STRING', { image_upload: true }]
    } } }
  }
  const prompt = { 7: { class_type: 'Gen', _meta: { title: 'G' }, inputs: { seed: 5, mode: 'a', size: 'l', text: 'hi', image: 'x.png', link: ['1', 0] } } }
  const fields = fieldsOf(prompt, catalogue)
  assert.deepEqual(fields.map((f) => [f.name, f.role, f.spec.kind]), [
    ['text', 'prompt', 'STRING'], ['image', 'image', 'STRING'], ['seed', 'seed', 'INT'], ['mode', 'plain', 'COMBO'], ['size', 'plain', 'COMBO']
  ])
  assert.deepEqual(fields.find((f) => f.name === 'size').spec.choices, ['s', 'l'])
  const seed = fields.find((f) => f.name === 'seed')
  assert.equal(parseValue(seed, '101').error, 'G · seed: at most 100')
  assert.equal(parseValue(seed, '1.5').error, 'G · seed: must be a whole number')
  assert.equal(parseValue(seed, '42').value, 42)
  const values = new Map([['7.seed', 42]])
  assert.equal(applyToPrompt(prompt, values)[7].inputs.seed, 42)
  assert.equal(prompt[7].inputs.seed, 5, 'the original is untouched')
  const workflow = { nodes: [
    { id: 7, widgets_values: [5, 'randomize', 'a'], widgets_values_named: { seed: 5, control_after_generate: 'randomize', mode: 'a' } },
    { id: 8, widgets_values: [5] }
  ] }
  const edited = applyToWorkflow(workflow, new Map([['7.seed', 42], ['7.mode', 'b'], ['8.seed', 1]]))
  assert.deepEqual(edited.nodes[0].widgets_values, [42, 'randomize', 'b'])
  assert.deepEqual(edited.nodes[1].widgets_values, [5], 'without the named map the position is not guessed')
}

export async function run(ctx) {
  checkFormRules()

  const page = await ctx.openPage('/app', { viewport: PHONE })

  // The examples come from /api/workflow_templates.
  const example = page.locator('#workflow-select option[value="template:text_to_image"]')
  await example.waitFor({ state: 'attached', timeout: 30_000 })
  await page.selectOption('#workflow-select', 'template:text_to_image')
  await page.locator('#inputs-card').waitFor({ state: 'visible', timeout: 30_000 })

  // The form is derived from the graph and the catalogue: text areas for the prompts, numbers with the
  // catalogue's range, a combo as a select, the seed with a randomize button.
  const instruction = field(page, 'Prompt', 'instruction')
  assert.equal(await instruction.evaluate((n) => n.tagName), 'TEXTAREA')
  assert.equal(await field(page, 'Prompt', 'negative_prompt').evaluate((n) => n.tagName), 'TEXTAREA')
  assert.equal(await field(page, 'Load OmniGen', 'dtype').evaluate((n) => n.tagName), 'SELECT')
  const steps = field(page, 'Sample', 'steps')
  assert.equal(await steps.getAttribute('min'), '1')
  const seed = field(page, 'Sample', 'seed')
  const before = await seed.inputValue()
  await page.getByRole('button', { name: 'Randomize Sample · seed' }).click()
  assert.notEqual(await seed.inputValue(), before, 'randomize draws a new seed')

  await field(page, 'Load OmniGen', 'model').fill(ctx.tinyModel)
  await field(page, 'Sample', 'width').fill('64')
  await field(page, 'Sample', 'height').fill('64')
  await steps.fill('2')
  await instruction.fill('A red <b>square</b> & a "blue" circle')
  await ctx.screenshot(page, 'app_page_phone_form')

  await page.click('#run')
  const pictures = page.locator('#gallery li img')
  await page.locator('#progress-card').waitFor({ state: 'visible', timeout: 30_000 })
  await pictures.first().waitFor({ state: 'visible', ...WAIT })
  await page.waitForFunction(() => document.getElementById('progress-title').textContent === 'Done', null, WAIT)
  assert.equal(await pictures.count(), 1)
  assert.ok(await pictures.first().evaluate((img) => img.complete && img.naturalWidth === 64), 'the picture is shown')
  const preview = await page.locator('#preview').getAttribute('src')
  assert.ok(preview?.startsWith('blob:'), `the sampler's previews came over the WebSocket (preview src ${preview})`)
  const first = Object.values(await history(ctx))[0]
  const ran = first.prompt[2]
  const sampler = Object.values(ran).find((n) => n.class_type === 'OmniGenSample')
  assert.equal(sampler.inputs.width, 64)
  assert.equal(sampler.inputs.steps, 2)
  assert.equal(Object.values(ran).find((n) => n.class_type === 'BuildPrompt').inputs.instruction, 'A red <b>square</b> & a "blue" circle')
  // The UI workflow travels with the run, carrying the values that ran (the PNG opens with them).
  const workflow = first.prompt[3].extra_pnginfo.workflow
  const sampleNode = workflow.nodes.find((n) => n.type === 'OmniGenSample')
  assert.equal(sampleNode.widgets_values_named.steps, 2)
  assert.equal(sampleNode.widgets_values[Object.keys(sampleNode.widgets_values_named).indexOf('steps')], 2)
  const text = await page.locator('body').innerText()
  assert.ok(!(await page.locator('#gallery b').count()), 'text is never parsed as HTML')
  assert.ok(text.includes('Done'))

  // Again with another seed: a second picture.
  await page.locator('#gallery li').first().getByRole('button', { name: 'New seed' }).click()
  await page.waitForFunction(() => document.querySelectorAll('#gallery li img').length === 2, null, WAIT)
  await page.waitForFunction(() => [...document.querySelectorAll('#gallery li img')].every((img) => img.complete && img.naturalWidth > 0), null, WAIT)
  const runs = Object.values(await history(ctx)).map((entry) => Object.values(entry.prompt[2]).find((n) => n.class_type === 'OmniGenSample').inputs)
  assert.equal(runs.length, 2)
  assert.notEqual(runs[0].seed, runs[1].seed, 'the re-run has another seed')
  assert.equal(runs[1].steps, 2, 'and the same other inputs')

  await page.locator('#gallery-card').scrollIntoViewIfNeeded()
  await ctx.screenshot(page, 'app_page_phone_results')

  // Open in editor: the workflow is saved where the editor lists its own, and the editor opens.
  const popup = page.waitForEvent('popup')
  await page.locator('#gallery li').first().getByRole('button', { name: 'Open in editor' }).click()
  await (await popup).close()
  await page.locator('#gallery li').first().getByText(/Saved as app\/result-/).waitFor({ timeout: 30_000 })
  const saved = await (await fetch(`${ctx.server.url}/api/userdata?dir=workflows&recurse=true`)).json()
  const savedPath = saved.find((path) => path.startsWith('app/result-'))
  assert.ok(savedPath, `saved for the editor: ${JSON.stringify(saved)}`)
  const savedWorkflow = await (await fetch(`${ctx.server.url}/api/userdata/${encodeURIComponent(`workflows/${savedPath}`)}`)).json()
  assert.ok(Array.isArray(savedWorkflow.nodes), 'a UI workflow the editor can open')

  // Workflows saved in the editor are offered after a reload, and open with their values.
  await page.reload()
  const savedOption = `saved:${savedPath}`
  await page.locator(`#workflow-select option[value="${savedOption}"]`).waitFor({ state: 'attached', timeout: 30_000 })
  await page.selectOption('#workflow-select', savedOption)
  await page.waitForFunction((name) => document.getElementById('workflow-name').textContent === name, savedPath.replace(/\.json$/, ''), { timeout: 30_000 })
  assert.equal(await field(page, 'Sample', 'steps').inputValue(), '2')
  assert.equal(await pictures.count(), 2, 'the gallery comes back from history')

  // A result PNG opened through the file picker gives its inputs back (POST /api/omnigen/convert).
  const file = await pictures.first().evaluate((img) => img.closest('li').querySelector('a[download]').getAttribute('download'))
  const png = Buffer.from(await (await fetch(`${ctx.server.url}/api/view?filename=${encodeURIComponent(file)}&type=output`)).arrayBuffer())
  await page.setInputFiles('#workflow-file', { name: 'result.png', mimeType: 'image/png', buffer: png })
  await page.waitForFunction(() => document.getElementById('workflow-name').textContent === 'result', null, { timeout: 30_000 })
  assert.equal(await field(page, 'Sample', 'width').inputValue(), '64')
  assert.equal(await instruction.inputValue(), 'A red <b>square</b> & a "blue" circle')

  // Usable at phone size: nothing wider than the screen.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone`)
  await page.evaluate(() => window.scrollTo(0, 0))
  await ctx.screenshot(page, 'app_page_phone')
  await page.setViewportSize({ width: 1280, height: 900 })
  await page.evaluate(() => window.scrollTo(0, 0))
  await ctx.screenshot(page, 'app_page_desktop')

  assert.deepEqual(describe(ctx.consoleErrors(page)), '', 'console errors on the app page')
}
