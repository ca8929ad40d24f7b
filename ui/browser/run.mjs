// Runs browser scenarios against a real `omnigen serve`: each NAME is ui/browser/tests/NAME.test.mjs,
// whose `run(ctx)` throws to fail (ctx: support.mjs `makeContext`). One browser for the whole run, a fresh
// server and data dir per scenario, screenshots under --out.
//
//   node ui/browser/run.mjs --omnigen BIN --frontend STATIC_DIR [--out DIR] NAME...
//
// tests/browser.rs runs it from `cargo test`; it prints `ok NAME` or `FAILED NAME: why` per scenario and
// exits 1 when any failed.

import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

import { describe, launchBrowser, makeContext, repo } from './support.mjs'

function parse(argv) {
  const opts = { omnigen: join(repo, 'target', 'debug', 'omnigen'), frontend: null, out: join(repo, 'target', 'browser-output'), names: [] }
  for (let i = 0; i < argv.length; i++) {
    const flag = /^--(omnigen|frontend|out)$/.exec(argv[i])
    if (flag) {
      if (argv[i + 1] === undefined) throw new Error(`${argv[i]} needs a value`)
      opts[flag[1]] = argv[++i]
    } else if (argv[i].startsWith('--')) {
      throw new Error(`unknown flag ${argv[i]}`)
    } else {
      opts.names.push(argv[i])
    }
  }
  if (!opts.names.length) throw new Error('name at least one scenario (ui/browser/tests/NAME.test.mjs)')
  return opts
}

async function runOne(browser, opts, name) {
  const scenario = await import(pathToFileURL(join(repo, 'ui', 'browser', 'tests', `${name}.test.mjs`)).href)
  const ctx = await makeContext({ browser, omnigen: opts.omnigen, frontend: opts.frontend, out: opts.out, name })
  try {
    await scenario.run(ctx)
  } catch (err) {
    err.serverLog = ctx.server.log()
    throw err
  } finally {
    await ctx.close()
  }
}

async function main() {
  const opts = parse(process.argv.slice(2))
  const browser = await launchBrowser()
  let failed = 0
  try {
    for (const name of opts.names) {
      const started = Date.now()
      try {
        await runOne(browser, opts, name)
        console.log(`ok ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`)
      } catch (err) {
        failed++
        console.log(`FAILED ${name}: ${err.stack ?? err}`)
        if (err.serverLog) console.log(`server log:\n${err.serverLog}`)
      }
    }
  } finally {
    await browser.close()
  }
  process.exit(failed ? 1 : 0)
}

main().catch((err) => {
  console.error(err.stack ?? err)
  process.exit(2)
})
