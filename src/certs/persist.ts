import { randomBytes } from "node:crypto";
import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fstatSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";

export interface PersistResult {
  readonly path: string;
  /** Where the previous content was kept: never beside the file (see persistFile). */
  readonly backup: string;
  readonly mode: number;
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** A new file that did not exist, opened without following a link at its name. */
function createExclusive(path: string, mode: number): number {
  return openSync(
    path,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    mode,
  );
}

function writeAll(fd: number, data: Buffer): void {
  let off = 0;
  while (off < data.length) off += writeSync(fd, data, off);
}

/** Read a regular file through one descriptor that did not follow a link. */
function readNoFollow(path: string): { data: Buffer; uid: number; gid: number; mode: number } {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error(`${path} is not a regular file`);
    const data = Buffer.alloc(st.size);
    let off = 0;
    while (off < data.length) {
      const n = readSync(fd, data, off, data.length - off, off);
      if (n === 0) break;
      off += n;
    }
    return { data: data.subarray(0, off), uid: st.uid, gid: st.gid, mode: st.mode };
  } finally {
    closeSync(fd);
  }
}

/**
 * The directory backups go to: ours alone (created 0700), never a symbolic link, never one
 * others can write.
 */
function ensureBackupDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  const uid = process.geteuid?.() ?? 0;
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0)
    throw new Error(
      `the backup directory ${dir} is not a directory of uid ${uid} that only it can write`,
    );
}

/**
 * Replace a file HAProxy loads (a PEM, a map, an ACL list) so a reload keeps the new content:
 * the new content goes to a temp file in the same directory, is fsynced, renamed over the old
 * one, and the directory fsynced. The previous content is kept in `backupDir`, never beside the
 * file: HAProxy loads every file of a `crt <directory>`, so an `F.bak` there would be served
 * after the next reload. Every file is created exclusively (O_EXCL, O_NOFOLLOW) under a random
 * name, so a link planted at a guessable name is never followed. `private` drops world access
 * (a PEM holds a key); otherwise the old mode is kept.
 */
export function persistFile(
  path: string,
  payload: string,
  opts: { private: boolean; backupDir: string },
): PersistResult {
  const st = lstatSync(path);
  if (!st.isFile()) throw new Error(`${path} is not a regular file`);
  const old = readNoFollow(path);
  const mode = old.mode & (opts.private ? 0o770 : 0o777);

  ensureBackupDir(opts.backupDir);
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const backup = join(
    opts.backupDir,
    `${basename(path)}.${stamp}.${randomBytes(3).toString("hex")}.bak`,
  );
  const bfd = createExclusive(backup, 0o600);
  try {
    fchownSync(bfd, old.uid, old.gid);
    fchmodSync(bfd, mode);
    writeAll(bfd, old.data);
    fsyncSync(bfd);
  } finally {
    closeSync(bfd);
  }
  fsyncDir(opts.backupDir);

  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.hapops-${randomBytes(6).toString("hex")}`);
  let created = false;
  try {
    const fd = createExclusive(tmp, 0o600);
    created = true;
    try {
      fchownSync(fd, old.uid, old.gid);
      fchmodSync(fd, mode);
      writeAll(fd, Buffer.from(payload));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    created = false;
    fsyncDir(dir);
  } finally {
    if (created) unlinkSync(tmp);
  }
  return { path, backup, mode };
}

/** persistFile for a PEM: never world access, whatever the old file had. */
export function persistPem(path: string, payload: string, backupDir: string): PersistResult {
  return persistFile(path, payload, { private: true, backupDir });
}

export interface WrittenFile {
  readonly path: string;
  readonly mode: number;
  readonly bytes: number;
}

/**
 * Write a file that is a snapshot rewritten every time (HAProxy's server-state file): created
 * if missing (with `mode`), otherwise replaced keeping its owner and mode, and no backup kept.
 * Atomic all the same: a temp file in the same directory, created exclusively under a random
 * name, fsynced, renamed over the path (a link there is replaced, never followed), and the
 * directory fsynced. A reader sees the old file or the new one, never a part of either, and no
 * temp file is left behind on failure.
 */
export function writeFileAtomic(path: string, payload: string, mode: number): WrittenFile {
  let owner: { uid: number; gid: number; mode: number } | undefined;
  try {
    const st = lstatSync(path);
    if (st.isFile()) owner = { uid: st.uid, gid: st.gid, mode: st.mode & 0o777 };
    else if (!st.isSymbolicLink()) throw new Error(`${path} is not a regular file`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.hapops-${randomBytes(6).toString("hex")}`);
  const data = Buffer.from(payload);
  const finalMode = owner?.mode ?? mode;
  let created = false;
  try {
    const fd = createExclusive(tmp, 0o600);
    created = true;
    try {
      if (owner) fchownSync(fd, owner.uid, owner.gid);
      fchmodSync(fd, finalMode);
      writeAll(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    created = false;
    fsyncDir(dir);
  } finally {
    if (created) unlinkSync(tmp);
  }
  return { path, mode: finalMode, bytes: data.length };
}
