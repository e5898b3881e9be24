/** One line of the table the issue asks for: a Gatehouse figure beside its ceiling. */
export interface Row {
  figure: string;
  gatehouse: string;
  /** The ceiling measured in the same run, with what it is. */
  ceiling: string;
  ratio: string;
  target: string;
  /** Whether the target is met; undefined where the row has no target here. */
  met: boolean | undefined;
  /** Said under the table when the target is not met: by how much. */
  shortfall?: string;
}

const HEADINGS = ['figure', 'Gatehouse', 'ceiling in the same run', 'ratio', 'target', 'met'] as const;

function cells(row: Row): string[] {
  return [row.figure, row.gatehouse, row.ceiling, row.ratio, row.target, row.met === undefined ? '' : row.met ? '✓' : '✗ unmet'];
}

/** Numbers as the issue writes them: 1,082 req/s, 6.6/s, 0.25. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return '—';
  if (Math.abs(value) >= 100) return Math.round(value).toLocaleString('en-US');
  if (Math.abs(value) >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

/** A plain-text table, columns padded, numbers right-aligned. */
export function renderText(rows: readonly Row[]): string[] {
  const table = [[...HEADINGS], ...rows.map(cells)];
  const widths = HEADINGS.map((_, column) => Math.max(...table.map((line) => [...line[column]!].length)));
  const rightAligned = new Set([1, 3]);
  const pad = (text: string, column: number) => {
    const fill = ' '.repeat(widths[column]! - [...text].length);
    return rightAligned.has(column) ? fill + text : text + fill;
  };
  const lines = table.map((line) => line.map(pad).join('  ').trimEnd());
  lines.splice(1, 0, widths.map((width) => '-'.repeat(width)).join('  '));
  return lines;
}

/** The same table in Markdown, for the README's Performance section. */
export function renderMarkdown(rows: readonly Row[]): string[] {
  const escape = (text: string) => text.replace(/\|/g, '\\|');
  return [
    `| ${HEADINGS.join(' | ')} |`,
    '|---|---:|---|---:|---|:-:|',
    ...rows.map((row) => `| ${cells(row).map(escape).join(' | ')} |`.replace('✗ unmet', '✗')),
  ];
}

/** Middle value; the mean of the two middle ones for an even count. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
