import {
  entryShape,
  newEntryText,
  readEntryText,
  type DataName,
  type EntryShape,
  type TableEntry,
  type TableInfo,
} from "../../parse/table.js";
import { jsonNumber, jsonString } from "../output.js";

/**
 * `table show --json` lines: `JSON.stringify(entryJson(table, e))` and a newline (ops/table.ts),
 * written field by field. An object per entry and its generic serialisation cost more than
 * reading the line, so the common line goes straight from its text to JSON (fromLine), and the
 * table's name and each data type's quoted name are made once.
 */
export class EntryJsonLines {
  private readonly head: string;
  private readonly dataKeys = new Map<string, string>();
  private readonly itemHeads = new Map<DataName, string>();
  private readonly text = newEntryText();
  private shape: EntryShape | undefined;
  private shapes = 0;

  constructor(table: string) {
    this.head = `{"table":${jsonString(table)},"key":`;
  }

  line(e: TableEntry): string {
    let data = "";
    // Object.keys lists names in the order JSON.stringify writes them.
    for (const name of Object.keys(e.data)) {
      const item = e.data[name]!;
      let key = this.dataKeys.get(name);
      if (key === undefined) {
        key = `${jsonString(name)}:{`;
        if (this.dataKeys.size < 64) this.dataKeys.set(name, key);
      }
      data +=
        (data === "" ? "{" : ",") +
        key +
        (item.period === undefined ? "" : `"period":${jsonNumber(item.period)},`) +
        `"value":${jsonString(item.value)}}`;
    }
    return (
      `${this.head}${jsonString(e.key)},"use":${jsonNumber(e.use)}` +
      `,"exp":${e.exp === undefined ? "null" : jsonNumber(e.exp)}` +
      `,"data":${data === "" ? "{}" : `${data}}`}}\n`
    );
  }

  /**
   * The same line for an entry line as HAProxy printed it, or undefined for a line to parse and
   * give to `line` (see readEntryText: its text needs no escaping, and its numbers none either).
   * Lines laid out as the last one are read by its shape (see entryShape).
   */
  fromLine(line: string): string | undefined {
    const shape = this.shape;
    const m = shape?.pattern.exec(line);
    if (shape !== undefined && m) {
      const use = shape.use === undefined ? "0" : m[shape.use];
      const exp = shape.exp === undefined ? "null" : m[shape.exp];
      let out = `${this.head}"${m[shape.key]}","use":${use},"exp":${exp},"data":`;
      if (shape.data.length === 0) return `${out}{}}\n`;
      for (let i = 0; i < shape.data.length; i++) {
        const { name, group } = shape.data[i]!;
        out += `${i === 0 ? "{" : ","}${this.itemHead(name)}${m[group]}"}`;
      }
      return `${out}}}\n`;
    }
    const t = this.text;
    if (!readEntryText(line, t)) return undefined;
    // A table prints one layout for all its entries; a dump that keeps changing is read without.
    if (this.shapes++ < 16) this.shape = entryShape(line);
    let out = `${this.head}"${t.key}","use":${t.use ?? "0"},"exp":${t.exp ?? "null"},"data":`;
    if (t.count === 0) return `${out}{}}\n`;
    for (let i = 0; i < t.count; i++)
      out += `${i === 0 ? "{" : ","}${this.itemHead(t.names[i]!)}${t.values[i]}"}`;
    return `${out}}}\n`;
  }

  /** `"name":{"period":P,"value":"` or `"name":{"value":"`. */
  private itemHead(name: DataName): string {
    let head = this.itemHeads.get(name);
    if (head === undefined) {
      head =
        `${jsonString(name.name)}:{` +
        (name.period === undefined ? "" : `"period":${jsonNumber(name.period)},`) +
        `"value":"`;
      if (this.itemHeads.size >= 64) this.itemHeads.clear();
      this.itemHeads.set(name, head);
    }
    return head;
  }
}

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
    const cells = this.lead ? [row.target ?? ""] : [];
    if ("note" in row) {
      cells.push(row.note);
      return cells;
    }
    const e = row.entry;
    cells.push(e.key, String(e.use), e.exp === undefined ? "-" : `${Math.round(e.exp / 1000)}s`);
    for (const k of this.dataNames) cells.push(e.data[k]?.value ?? "-");
    return cells;
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
    let text = "";
    const last = cells.length - 1;
    for (let i = 0; i < last; i++) text += cells[i]!.padEnd((w[i] ?? 0) + 2);
    if (last >= 0) text += cells[last];
    return text.trimEnd() + "\n";
  }
}
