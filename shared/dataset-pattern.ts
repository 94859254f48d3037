// Dataset patterns of a job's "datasets" and "exclude": a dataset name whose components may be
// `*` (one whole component), contain `*` (any characters within that component: "vm-*"), or be
// `**` (any number of components, none included). So "tank/data/**" is tank/data and every
// dataset below it, "tank/*/db" is tank/a/db and tank/b/db but not tank/db. Matching is by whole
// components: "tank/data" never matches "tank/database". The part before the first wildcard is
// the root a selection lists under (zfs list -r <root>): a pattern cannot start with a wildcard,
// so a job never walks every pool by accident.
import { ZferryError } from './errors.js';
import { validateDataset } from './names.js';

export interface DatasetPattern {
  text: string;
  /** the literal components before the first wildcard, joined: what to list under */
  root: string;
  /** no wildcard at all: exactly the dataset `root` */
  literal: boolean;
  components: string[];
}

function refuse(text: string, where: string, why: string): never {
  throw new ZferryError('bad-config', `${where}: pattern ${JSON.stringify(text)} ${why}`);
}

export function parseDatasetPattern(text: string, where: string): DatasetPattern {
  const components = text.split('/');
  const firstWild = components.findIndex((c) => c.includes('*'));
  if (firstWild === 0) refuse(text, where, 'starts with a wildcard: name its pool (tank/** rather than **)');
  for (const c of components) {
    if (c.includes('**') && c !== '**') refuse(text, where, `has "${c}": ** stands for whole components only`);
  }
  const literalPart = firstWild < 0 ? components : components.slice(0, firstWild);
  const root = literalPart.join('/');
  try {
    validateDataset(root);
    // the wildcard components, with their * taken out, must still be valid name characters
    for (const c of components.slice(literalPart.length)) if (c.replace(/\*/g, '') !== '') validateDataset(`x/${c.replace(/\*/g, 'x')}`);
  } catch (e) {
    refuse(text, where, `is not a dataset name or pattern (${(e as Error).message})`);
  }
  return { text, root, literal: firstWild < 0, components };
}

function componentMatches(pattern: string, name: string): boolean {
  if (!pattern.includes('*')) return pattern === name;
  const re = new RegExp(`^${pattern.split('*').map(escape).join('[^/]*')}$`);
  return re.test(name);
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function matchFrom(p: string[], i: number, n: string[], j: number): boolean {
  if (i === p.length) return j === n.length;
  if (p[i] === '**') {
    for (let k = j; k <= n.length; k++) if (matchFrom(p, i + 1, n, k)) return true;
    return false;
  }
  return j < n.length && componentMatches(p[i]!, n[j]!) && matchFrom(p, i + 1, n, j + 1);
}

/** Whether the dataset `name` is one the pattern stands for. */
export function matchesPattern(pattern: DatasetPattern, name: string): boolean {
  return matchFrom(pattern.components, 0, name.split('/'), 0);
}
