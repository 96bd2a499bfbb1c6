import type { TableEntry, TableInfo } from "../../parse/table.js";

/** A row of the table: an entry, or (over many targets) a target's failure in its place. */
type Row =
  | { readonly target?: string | undefined; readonly entry: TableEntry }
  | { readonly target: string; readonly note: string };

/**
 * Human output that streams: column widths come from the first `batch` rows, later rows are
 * printed as they arrive with the same widths (a longer cell only pushes its own line out), so a
 * table of a million entries is never held. Over many targets the first column is TARGET; its
 * width comes from every target's name, known up front.
 */
export class EntryPrinter {
  private readonly buffer: Row[] = [];
  private widths: number[] | undefined;
  private dataNames: string[] = [];

  constructor(
    private readonly out: (text: string) => void,
    private readonly batch = 500,
    private readonly lead?: { readonly header: string; readonly values: readonly string[] },
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

  /** `target`: whose entry it is, when the printer has a TARGET column. */
  push(e: TableEntry, target?: string): void {
    this.count++;
    this.flushHeader();
    this.add({ target, entry: e });
  }

  /** A row that is not an entry: what became of a target, in its place among the rows. */
  note(target: string, text: string): void {
    this.add({ target, note: text });
  }

  private add(row: Row): void {
    if (this.widths) {
      this.out(this.line(this.cells(row)));
      return;
    }
    this.buffer.push(row);
    if (this.buffer.length >= this.batch) this.flush();
  }

  /** `header` false: nothing at all for an empty answer (a --key that is not there). */
  end(opts: { header: boolean } = { header: true }): void {
    if (opts.header) this.flushHeader();
    if (!this.widths && this.buffer.length > 0) this.flush();
  }

  private cells(row: Row): string[] {
    const lead = this.lead ? [row.target ?? ""] : [];
    if ("note" in row) return [...lead, row.note];
    const e = row.entry;
    return [
      ...lead,
      e.key,
      String(e.use),
      e.exp === undefined ? "-" : `${Math.round(e.exp / 1000)}s`,
      ...this.dataNames.map((k) => e.data[k]?.value ?? "-"),
    ];
  }

  private flush(): void {
    const entries = this.buffer.flatMap((r) => ("entry" in r ? [r.entry] : []));
    for (const e of entries)
      for (const k of Object.keys(e.data)) if (!this.dataNames.includes(k)) this.dataNames.push(k);
    const label = (k: string) => {
      const p = entries.find((x) => x.data[k]?.period !== undefined)?.data[k]?.period;
      return (p !== undefined ? `${k}(${p / 1000}s)` : k).toUpperCase();
    };
    const head = [
      ...(this.lead ? [this.lead.header] : []),
      "KEY",
      "USE",
      "EXPIRES",
      ...this.dataNames.map(label),
    ];
    const rows = [head, ...this.buffer.map((r) => this.cells(r))];
    // A row's last cell is never padded, so it takes no part in the widths: a note (a long
    // message after the target) does not widen the KEY column.
    const sized = [
      ...rows.map((r) => r.slice(0, -1)),
      ...(this.lead?.values ?? []).map((v) => [v]),
    ];
    this.widths = head.map((_, i) => sized.reduce((w, r) => Math.max(w, (r[i] ?? "").length), 0));
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
