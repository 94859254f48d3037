// Ends a CLI once what it printed has left the process. process.exit() alone drops output
// still queued for a pipe or socket; waiting for the loop to drain instead can hang on a
// handle a library keeps open (grpc-js channels linger for seconds).
export function exitWhenFlushed(code: number): void {
  process.exitCode = code;
  let pending = 2;
  const flushed = () => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write('', flushed);
  process.stderr.write('', flushed);
}
