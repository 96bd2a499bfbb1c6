import {
  closeSync,
  copyFileSync,
  fchmodSync,
  fchownSync,
  fsyncSync,
  lstatSync,
  openSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";

export interface PersistResult {
  readonly path: string;
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

/**
 * Replace a PEM file on disk so a reload keeps the new certificate: the previous file is kept as
 * `<file>.bak` (same owner and mode), the new one is written to a temp file in the same directory,
 * fsynced, renamed over the old one, and the directory fsynced. A PEM file holds a private key,
 * so the mode never includes world access, whatever the old file had.
 */
export function persistPem(path: string, payload: string): PersistResult {
  return persistFile(path, payload, { private: true });
}

/**
 * The same atomic replace for any file HAProxy loads (a map, an ACL list). `private` drops world
 * access from the mode (a PEM file holds a key); otherwise the old mode is kept.
 */
export function persistFile(
  path: string,
  payload: string,
  opts: { private: boolean },
): PersistResult {
  const st = lstatSync(path);
  if (!st.isFile()) throw new Error(`${path} is not a regular file`);
  const mode = st.mode & (opts.private ? 0o770 : 0o777);
  const dir = dirname(path);
  const backup = `${path}.bak`;
  const backupTmp = join(dir, `.${basename(path)}.bak.hapops-${process.pid}`);
  const tmp = join(dir, `.${basename(path)}.hapops-${process.pid}`);
  try {
    copyFileSync(path, backupTmp);
    const bfd = openSync(backupTmp, "r+");
    try {
      fchownSync(bfd, st.uid, st.gid);
      fchmodSync(bfd, mode);
      fsyncSync(bfd);
    } finally {
      closeSync(bfd);
    }
    renameSync(backupTmp, backup);

    const fd = openSync(tmp, "wx", 0o600);
    try {
      fchownSync(fd, st.uid, st.gid);
      fchmodSync(fd, mode);
      const buf = Buffer.from(payload);
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    fsyncDir(dir);
  } catch (e) {
    rmSync(tmp, { force: true });
    rmSync(backupTmp, { force: true });
    throw e;
  }
  return { path, backup, mode };
}
