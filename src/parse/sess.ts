/**
 * `show sess`: one line per stream (management.txt 9.3; cli_io_handler_dump_sess in
 * src/stream.c), e.g. on 2.6
 *
 *   0x55c1...: proto=tcpv4 src=127.0.0.1:40820 fe=fe_http be=be_app srv=app2 ts=00 epoch=0x1
 *     age=1s calls=2 rate=0 cpu=0 lat=0 rq[f=...,i=0,an=8000h,rx=,wx=,ax=] rp[...] scf=[...]
 *     scb=[...] exp=0s rc=0 c_exp=
 *
 * (one line). Measured on 2.6, 2.8, 3.0, 3.2 and 3.4: the fields hapops reads (proto, src, fe,
 * be, srv, age) are the same words in every version; what follows them changed (2.8 moved the
 * rx/wx timers from rq[]/rp[] into scf=[]/scb=[]). An IPv6 client is printed without brackets
 * (`src=::1:54321`); a client of a unix socket as `src=unix:<listener id>`; a stream with no
 * client connection (an applet's) has no src, fe, be or srv at all. `be=<NONE>` is a stream not
 * yet given a backend, `srv=<none>` one not yet given a server. `age` is human_time() of the time
 * since the request started: at most two units, "0s", "59s", "5m3s", "2h5m", "1d2h", "?".
 */

export interface SessClient {
  /** "127.0.0.1", "::1", or "unix" for a client of a unix socket. */
  readonly address: string;
  /** The client's port; for a unix socket, the listener's id. */
  readonly port: number | undefined;
}

export interface SessStream {
  /** The stream's pointer, as `show sess <id>` takes it. */
  readonly id: string;
  readonly proto: string;
  readonly client: SessClient | undefined;
  readonly frontend: string | undefined;
  /** Undefined while the stream has no backend (`be=<NONE>`). */
  readonly backend: string | undefined;
  /** Undefined while the stream has no server (`srv=<none>`). */
  readonly server: string | undefined;
  /** As printed ("5m3s"). */
  readonly age: string;
  /** `age` in seconds (a lower bound: HAProxy prints two units at most); undefined for "?". */
  readonly ageSec: number | undefined;
}

const LINE = /^(0x[0-9a-f]+|\(nil\)): (.*)$/;
const UNITS: Readonly<Record<string, number>> = { d: 86_400, h: 3_600, m: 60, s: 1 };

/** human_time() back to seconds: "1d2h" is 93600; undefined when it does not read. */
export function parseHumanTime(text: string): number | undefined {
  if (!/^(\d+[dhms])+$/.test(text)) return undefined;
  let total = 0;
  for (const m of text.matchAll(/(\d+)([dhms])/g)) total += Number(m[1]) * UNITS[m[2]!]!;
  return total;
}

function client(src: string | undefined): SessClient | undefined {
  if (src === undefined) return undefined;
  if (src.startsWith("unix:")) {
    const id = Number(src.slice(5));
    return { address: "unix", port: Number.isInteger(id) ? id : undefined };
  }
  const colon = src.lastIndexOf(":");
  if (colon < 0) return { address: src, port: undefined };
  const port = Number(src.slice(colon + 1));
  return { address: src.slice(0, colon), port: Number.isInteger(port) ? port : undefined };
}

/**
 * One line of `show sess`, or undefined for a line that is not a stream (a future version's
 * extra line is skipped rather than failing the whole answer). Only the words before the first
 * bracketed field are read: names cannot hold spaces or `=`, and what follows is internal state.
 */
export function parseSessLine(text: string): SessStream | undefined {
  const m = LINE.exec(text);
  if (!m) return undefined;
  const fields = new Map<string, string>();
  for (const word of m[2]!.split(" ")) {
    const eq = word.indexOf("=");
    // rq[f=...], scf=[...]: the stream's buffers and connectors, past what hapops reads.
    if (eq <= 0 || word.includes("[")) {
      if (fields.has("age")) break;
      continue;
    }
    fields.set(word.slice(0, eq), word.slice(eq + 1));
  }
  const name = (v: string | undefined) =>
    v === undefined || v === "<NONE>" || v === "<none>" ? undefined : v;
  const age = fields.get("age") ?? "?";
  return {
    id: m[1]!,
    proto: fields.get("proto") ?? "?",
    client: client(fields.get("src")),
    frontend: fields.get("fe"),
    backend: name(fields.get("be")),
    server: name(fields.get("srv")),
    age,
    ageSec: parseHumanTime(age),
  };
}

/**
 * `show sess` line by line, for an answer that can be large on a busy process: each stream is
 * handed to `onStream` as it is parsed and nothing is kept here but counts.
 */
export class SessParser {
  /** Lines that were not streams (none in 2.6 to 3.4). */
  skipped = 0;
  streams = 0;

  constructor(private readonly onStream: (s: SessStream) => void) {}

  line(text: string): void {
    if (text.length === 0) return;
    const s = parseSessLine(text);
    if (!s) {
      this.skipped++;
      return;
    }
    this.streams++;
    this.onStream(s);
  }
}

export function parseSess(lines: readonly string[]): SessStream[] {
  const out: SessStream[] = [];
  const parser = new SessParser((s) => out.push(s));
  for (const l of lines) parser.line(l);
  return out;
}

/** What `show sess <id>` adds for hapops: the bytes a stream moved, and whose stream it is. */
export interface SessDetail {
  readonly id: string;
  /** `source=` of the first line, as printed ("127.0.0.1:52602"). */
  readonly source: string | undefined;
  /** Bytes received from the client so far. */
  readonly bytesIn: number | undefined;
  /** Bytes sent to the client so far. */
  readonly bytesOut: number | undefined;
}

/**
 * `show sess <id>` (a full dump, "intentionally not documented"): measured on 2.6 to 3.2, the
 * request and response channels print `req=<p> (... total=<n>)` and `res=<p> (... total=<n>)`;
 * 3.4 dropped `total=` there and prints the client side's counts on its `scf=` line instead
 * (`in=<n> out=<n>`). "Session not found." (the stream ended) gives undefined.
 */
export function parseSessDetail(lines: readonly string[]): SessDetail | undefined {
  const first = /^(0x[0-9a-f]+): \[[^\]]*\].*?(?: source=(\S+))?$/.exec(lines[0] ?? "");
  if (!first) return undefined;
  let bytesIn: number | undefined;
  let bytesOut: number | undefined;
  for (const line of lines) {
    const t = line.trimStart();
    const total = /^(req|res)=\S+ \(.*\btotal=(\d+)\)/.exec(t);
    if (total) {
      if (total[1] === "req") bytesIn = Number(total[2]);
      else bytesOut = Number(total[2]);
      continue;
    }
    if (t.startsWith("scf=")) {
      const io = /\bin=(\d+) out=(\d+)\b/.exec(t);
      if (io && bytesIn === undefined && bytesOut === undefined) {
        bytesIn = Number(io[1]);
        bytesOut = Number(io[2]);
      }
    }
  }
  return { id: first[1]!, source: first[2], bytesIn, bytesOut };
}
