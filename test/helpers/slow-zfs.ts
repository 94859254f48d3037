// A `zfs` that receives slowly: for `zfs receive` it feeds the real command's stdin at
// SLOW_ZFS_RECV_BPS bytes per second (a stand-in for an IOPS-bound disk); every other
// command goes straight to the real zfs (SLOW_ZFS_REAL). With SLOW_ZFS_PROGRESS set, the
// bytes fed so far are written to that file, so a test can see how far zfs recv has got.
import { spawn } from 'node:child_process';
import { renameSync, writeFileSync } from 'node:fs';

const real = process.env.SLOW_ZFS_REAL;
const bps = Number(process.env.SLOW_ZFS_RECV_BPS ?? 0);
if (!real || !(bps > 0)) {
  process.stderr.write('slow-zfs: set SLOW_ZFS_REAL and SLOW_ZFS_RECV_BPS\n');
  process.exit(2);
}
const args = process.argv.slice(2);
const isRecv = (args[0] === 'receive' || args[0] === 'recv') && !args.includes('-A');
const child = spawn(real, args, { stdio: [isRecv ? 'pipe' : 'inherit', 'inherit', 'inherit'] });
child.on('close', (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
if (isRecv) {
  // SLOW_ZFS_PAUSE_MS: the disk stalls this long before taking anything (a scrub, say)
  const start = Date.now() + Number(process.env.SLOW_ZFS_PAUSE_MS ?? 0);
  let fed = 0;
  child.stdin!.on('error', () => {});
  process.stdin.on('data', (b: Buffer) => {
    process.stdin.pause();
    fed += b.length;
    const due = start + (fed * 1000) / bps;
    const go = () => {
      // write-then-rename: a reader never sees the file empty between truncate and write
      const progress = process.env.SLOW_ZFS_PROGRESS;
      if (progress) {
        writeFileSync(`${progress}.tmp`, String(fed));
        renameSync(`${progress}.tmp`, progress);
      }
      if (child.stdin!.write(b)) process.stdin.resume();
      else child.stdin!.once('drain', () => process.stdin.resume());
    };
    setTimeout(go, Math.max(0, due - Date.now()));
  });
  process.stdin.on('end', () => setTimeout(() => child.stdin!.end(), Math.max(0, start + (fed * 1000) / bps - Date.now()) + 5));
}
