// One error type for everything an operator may see: `message` is a single line that says
// what failed and, where known, what to do. `code` is a stable machine-readable tag.
export class ZferryError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(oneLine(message));
    this.name = 'ZferryError';
  }
}

/** Folds multi-line tool output (zfs wraps its messages) into one line. */
export function oneLine(text: string): string {
  return text
    .split(/\r?\n/)
    .map((s) => s.trim())
    .filter(Boolean)
    .join(' ')
    .slice(0, 2000);
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return oneLine(err.message);
  return oneLine(String(err));
}
