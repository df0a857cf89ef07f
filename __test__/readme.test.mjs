// Item 4: every code example in README.md type-checks against the real typings.
//
// At test time this reads README.md, takes every fenced code block whose info string starts
// with `js` or `ts` (also `javascript` / `typescript`), and compiles each one, as TypeScript,
// with the repository's own `node_modules/.bin/tsc --strict --noEmit` (module nodenext,
// target es2022, lib es2022 + esnext.disposable, types node). The module name `oxlock`
// resolves to this repository through a `node_modules/oxlock` symlink in a temp dir, so
// `import … from 'oxlock'` goes through the real package.json `exports` and index.d.ts.
//
// Each block is written, unchanged, as its own ES module (`block-N.mts`), so top-level
// `await` and `await using` work as they do in the README. The only lines added are a
// preamble (before the block, never inside it) that gives `require('oxlock')` the type Node's
// `require` of this package has: plain TypeScript types `const x = require('…')` as `any`,
// which would check nothing. A block must be self-contained: it gets no `Lock` or `lock` from
// an earlier block.
//
// Convention: a block opts out of the check only when its fence is exactly ```js no-check
// (for pseudo-code or fragments that cannot compile on their own). Nothing else is skipped.
import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const README = path.join(ROOT, 'README.md')
const TSC = path.join(ROOT, 'node_modules', '.bin', 'tsc')

const CHECKED = new Set(['js', 'javascript', 'ts', 'typescript'])

/** The fenced code blocks of a Markdown text: { info, tag, code, line } (line: of the opening fence, 1-based). */
function fencedBlocks(markdown) {
  const lines = markdown.split(/\r?\n/)
  const blocks = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^( {0,3})(`{3,}|~{3,})(.*)$/.exec(lines[i])
    if (!open) continue
    const [, indent, fence, rest] = open
    if (fence[0] === '`' && rest.includes('`')) continue // not a fence (inline code)
    const info = rest.trim()
    const body = []
    let j = i + 1
    for (; j < lines.length; j++) {
      const close = new RegExp(`^ {0,3}${fence[0] === '`' ? '`' : '~'}{${fence.length},}\\s*$`).exec(lines[j])
      if (close) break
      // Content lines lose up to the opening fence's indentation (CommonMark).
      let l = lines[j]
      for (let k = 0; k < indent.length && l.startsWith(' '); k++) l = l.slice(1)
      body.push(l)
    }
    blocks.push({ info, tag: info.split(/\s+/)[0].toLowerCase(), code: body.join('\n'), line: i + 1 })
    i = j
  }
  return blocks
}

const PREAMBLE = [
  "// Added by readme.test.mjs (the README block follows, unchanged): require('oxlock') as Node types it.",
  "declare function require(id: 'oxlock'): typeof import('oxlock')",
  'declare function require(id: string): any',
]

const readme = fs.readFileSync(README, 'utf8')
const all = fencedBlocks(readme)
const blocks = all.filter((b) => CHECKED.has(b.tag))
const checked = blocks.filter((b) => !/^js\s+no-check$/.test(b.info))

let dir
let diagnostics // file name -> [message]
let tscOutput = ''

function run(cmd, args, opts) {
  return new Promise((resolve) => {
    execFile(cmd, args, { ...opts, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, error, stdout, stderr })
    })
  })
}

before(async () => {
  assert.ok(fs.existsSync(TSC), `the readme test needs the repository's TypeScript (${TSC}): run npm install`)
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oxlock-readme-'))
  fs.mkdirSync(path.join(dir, 'node_modules'))
  fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'oxlock'), 'dir')
  fs.symlinkSync(path.join(ROOT, 'node_modules', '@types'), path.join(dir, 'node_modules', '@types'), 'dir')
  const files = checked.map((b, i) => {
    b.file = `block-${i + 1}.mts`
    fs.writeFileSync(path.join(dir, b.file), `${PREAMBLE.join('\n')}\n${b.code}\n`)
    return b.file
  })
  diagnostics = new Map(files.map((f) => [f, []]))
  if (files.length === 0) return
  const r = await run(
    TSC,
    [
      '--strict',
      '--noEmit',
      '--pretty', 'false',
      '--module', 'nodenext',
      '--moduleResolution', 'nodenext',
      '--target', 'es2022',
      '--lib', 'es2022,esnext.disposable',
      '--types', 'node',
      ...files,
    ],
    { cwd: dir, timeout: 120000 },
  )
  tscOutput = `${r.stdout}${r.stderr}`
  // "block-1.mts(12,6): error TS2339: …", continuation lines indented below it.
  let current = null // the diagnostics list the last error line went to
  for (const line of tscOutput.split(/\r?\n/)) {
    const m = /^(block-\d+\.mts)\((\d+),(\d+)\): (error TS\d+: .*)$/.exec(line)
    if (m) {
      const b = checked.find((x) => x.file === m[1])
      // Map the line back into README.md.
      const readmeLine = b.line + Number(m[2]) - PREAMBLE.length
      current = diagnostics.get(m[1])
      current.push(`README.md:${readmeLine}:${m[3]} ${m[4]}`)
    } else if (current !== null && /^\s+\S/.test(line)) {
      current[current.length - 1] += `\n    ${line.trim()}`
    } else if (line.trim()) {
      current = null
    }
  }
  const attributed = [...diagnostics.values()].reduce((a, m) => a + m.length, 0)
  if (r.code !== 0 && attributed === 0) {
    throw new Error(`tsc failed without a diagnostic for a README block (exit ${r.code}):\n${tscOutput}\n${r.error ? r.error.message : ''}`)
  }
})

after(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true })
})

describe('item 4: README code blocks compile with tsc --strict', { timeout: 180000 }, () => {
  test('item 4: README.md has js/ts code blocks to check', () => {
    assert.ok(checked.length > 0, `no checked js/ts block found among ${all.length} fenced blocks of README.md`)
  })

  for (const b of checked) {
    const first = b.code.split('\n').find((l) => l.trim()) ?? ''
    test(`item 4: README block at line ${b.line} (\`\`\`${b.info}): ${first.trim().slice(0, 60)}`, () => {
      const errs = diagnostics.get(b.file) ?? []
      if (errs.length > 0) assert.fail(`tsc --strict rejects the README block at line ${b.line}:\n${errs.join('\n')}`)
    })
  }
})
