// Keeps the per-platform packages in step with the main one: every npm/<platform>/ is listed
// in optionalDependencies at the main package's version, and its own package.json carries
// that version (`napi version` does the latter too). Runs as the `version` script, so
// `npm version <x>` updates everything; `node scripts/sync-platforms.mjs --check` fails
// when anything is out of step.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..')
const check = process.argv.includes('--check')
const read = (f) => JSON.parse(readFileSync(f, 'utf8'))
const main = read(path.join(root, 'package.json'))
const wanted = {}
const problems = []
for (const dir of readdirSync(path.join(root, 'npm')).sort()) {
  const file = path.join(root, 'npm', dir, 'package.json')
  const pkg = read(file)
  wanted[pkg.name] = main.version
  if (pkg.version !== main.version) {
    problems.push(`${pkg.name} is ${pkg.version}, the main package ${main.version}`)
    pkg.version = main.version
    if (!check) writeFileSync(file, JSON.stringify(pkg, null, 2) + '\n')
  }
}
if (JSON.stringify(main.optionalDependencies) !== JSON.stringify(wanted)) {
  problems.push(`optionalDependencies should be ${JSON.stringify(wanted)}`)
  main.optionalDependencies = wanted
  if (!check) writeFileSync(path.join(root, 'package.json'), JSON.stringify(main, null, 2) + '\n')
}
if (check && problems.length > 0) {
  console.error(problems.join('\n'))
  process.exit(1)
}
