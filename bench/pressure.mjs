// CPU pressure for a benchmark run, the same for every library of the run:
//   none  a quiet machine (whatever else runs on it);
//   burn  one CPU-burning process per core (`for (;;) {}`) for the whole run: every thread
//         wake-up of the measured process waits behind a busy CPU, as on a loaded host;
//   pin   the measured processes restricted to one CPU with taskset (the servers are not):
//         a container given one core, where an I/O thread and the JS thread take turns.
import { spawn, execFileSync } from 'node:child_process'
import os from 'node:os'

export const PRESSURES = ['none', 'burn', 'pin']

export const PRESSURE_TEXT = {
  none: 'no added CPU pressure',
  burn: `one CPU-burning process per core (${os.cpus().length}) running through the run`,
  pin: 'the measured processes pinned to CPU 0 with taskset (servers unpinned)',
}

/** Starts `mode`; returns how to spawn a measured process under it, and how to stop it. */
export async function startPressure(mode) {
  if (!PRESSURES.includes(mode)) throw new Error(`unknown --pressure ${mode} (${PRESSURES.join(', ')})`)
  const burners = []
  const stop = () => {
    for (const b of burners.splice(0)) b.kill('SIGKILL')
  }
  if (mode === 'burn') {
    process.on('exit', stop)
    for (let i = 0; i < os.cpus().length; i++) burners.push(spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }))
    await new Promise((r) => setTimeout(r, 500)) // let the scheduler see them busy
  }
  if (mode === 'pin') execFileSync('taskset', ['-c', '0', 'true']) // fails early without taskset
  /** [command, args] for spawning `cmd args` as a measured process. */
  const wrap = (cmd, args) => (mode === 'pin' ? ['taskset', ['-c', '0', cmd, ...args]] : [cmd, args])
  return { mode, wrap, stop }
}
