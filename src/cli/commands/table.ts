import type { TableEntry, TableInfo } from "../../parse/table.js";

/**
 * Human output that streams: column widths come from the first `batch` entries, later rows are
 * printed as they arrive with the same widths (a longer cell only pushes its own line out), so a
 * table of a million entries is never held.
 */
export class EntryPrinter {
  private readonly buffer: TableEntry[] = [];
  private widths: number[] | undefined;
  private dataNames: string[] = [];

  constructor(
    private readonly out: (text: string) => void,
    private readonly batch = 500,
  ) {}

  private pendingHeader: string | undefined;
  /** Entries printed so far. */
  count = 0;

  /** Printed with the first entry (or at the end), so an error never follows a header. */
  header(info: TableInfo): void {
    this.pendingHeader = `table ${info.name}: type ${info.type}, ${info.used} of ${info.size} entries used\n`;
  }

  private flushHeader(): void {
    if (this.pendingHeader === undefined) return;
    this.out(this.pendingHeader);
    this.pendingHeader = undefined;
  }

  push(e: TableEntry): void {
    this.count++;
    this.flushHeader();
    if (this.widths) {
      this.out(this.line(this.cells(e)));
      return;
    }
    this.buffer.push(e);
    if (this.buffer.length >= this.batch) this.flush();
  }

  /** `header` false: nothing at all for an empty answer (a --key that is not there). */
  end(opts: { header: boolean } = { header: true }): void {
    if (opts.header) this.flushHeader();
    if (!this.widths && this.buffer.length > 0) this.flush();
  }

  private cells(e: TableEntry): string[] {
    return [
      e.key,
      String(e.use),
      e.exp === undefined ? "-" : `${Math.round(e.exp / 1000)}s`,
      ...this.dataNames.map((k) => e.data[k]?.value ?? "-"),
    ];
  }

  private flush(): void {
    for (const e of this.buffer)
      for (const k of Object.keys(e.data)) if (!this.dataNames.includes(k)) this.dataNames.push(k);
    const label = (k: string) => {
      const p = this.buffer.find((x) => x.data[k]?.period !== undefined)?.data[k]?.period;
      return (p !== undefined ? `${k}(${p / 1000}s)` : k).toUpperCase();
    };
    const head = ["KEY", "USE", "EXPIRES", ...this.dataNames.map(label)];
    const rows = [head, ...this.buffer.map((e) => this.cells(e))];
    this.widths = head.map((_, i) => rows.reduce((w, r) => Math.max(w, (r[i] ?? "").length), 0));
    for (const r of rows) this.out(this.line(r));
    this.buffer.length = 0;
  }

  private line(cells: readonly string[]): string {
    const w = this.widths ?? [];
    return (
      cells
        .map((c, i) => (i === cells.length - 1 ? c : c.padEnd((w[i] ?? 0) + 2)))
        .join("")
        .trimEnd() + "\n"
    );
  }
}
