import {
  closeSync,
  constants,
  fstatSync,
  openSync,
  readdirSync,
  readSync,
  realpathSync,
  statSync,
  unlinkSync,
} from "node:fs";
import { randomBytes } from "node:crypto";
import { dirname, join } from "node:path";
import { GuardError, ValidationError } from "../errors.js";

/** Whose rights open the files an operator names (`--pem`, `--from`, ...). */
export interface Credentials {
  readonly user: string;
  readonly uid: number;
  readonly gid: number;
}

/**
 * The files an operator hands to hapops. Under sudo they are opened with the operator's own uid,
 * gid and groups, the way sudoedit does, so root's rights never reach a file the operator could
 * not read themselves; a refusal names the file, never its content.
 */
export interface InputFiles {
  /** A regular file's text; `what` names the option in errors (`--pem`). */
  readText(path: string, what: string): string;
  /** Names in a directory (`--certbot-dir`). */
  list(dir: string, what: string): string[];
  /** Refuse a path (or any directory above it) that the operator could change: see below. */
  checkNotOperatorWritable(path: string, what: string): void;
}

/** Files larger than this are not inputs an operator means to send (maps, certificates). */
const MAX_INPUT_BYTES = 64 * 1024 * 1024;

const WHY: Record<string, string> = {
  ENOENT: "no such file",
  EACCES: "permission denied",
  EPERM: "permission denied",
  EISDIR: "it is a directory",
  ENOTDIR: "a part of the path is not a directory",
  ELOOP: "too many symbolic links",
  ENXIO: "it is not a regular file",
};

function refuse(what: string, path: string, e: unknown): ValidationError {
  const code = (e as NodeJS.ErrnoException).code ?? "";
  return new ValidationError(
    `cannot read ${what} ${path}: ${WHY[code] ?? (e instanceof ValidationError ? e.message : "it cannot be opened")}`,
  );
}

function readRegular(path: string): string {
  // O_NONBLOCK: a FIFO named as input must not hang the run; it is refused below.
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw Object.assign(new Error("directory"), { code: "EISDIR" });
    if (!st.isFile()) throw Object.assign(new Error("not a file"), { code: "ENXIO" });
    if (st.size > MAX_INPUT_BYTES)
      throw new ValidationError(`it is larger than ${MAX_INPUT_BYTES / 1024 / 1024} MiB`);
    const buf = Buffer.alloc(st.size);
    let off = 0;
    while (off < buf.length) {
      const n = readSync(fd, buf, off, buf.length - off, off);
      if (n === 0) break;
      off += n;
    }
    return buf.subarray(0, off).toString("utf8");
  } finally {
    closeSync(fd);
  }
}

/**
 * Run `fn` with the operator's effective uid, gid and supplementary groups, then return to
 * root's. Everything inside is synchronous, so nothing else runs with the borrowed identity;
 * glibc applies set*id to every thread of the process.
 */
function asOperator<T>(who: Credentials, fn: () => T): T {
  const groups = process.getgroups!();
  // initgroups(3): the operator's groups from the system database (NSS), as login would set them.
  (process as unknown as { initgroups(user: string, extra: number): void }).initgroups(
    who.user,
    who.gid,
  );
  process.setegid!(who.gid);
  process.seteuid!(who.uid);
  try {
    return fn();
  } finally {
    process.seteuid!(0);
    process.setegid!(0);
    process.setgroups!(groups);
  }
}

/** Inputs opened with the caller's own rights: no sudo, nothing to borrow. */
export const ownFiles: InputFiles = {
  readText(path, what) {
    try {
      return readRegular(path);
    } catch (e) {
      throw refuse(what, path, e);
    }
  },
  list(dir, what) {
    try {
      return readdirSync(dir);
    } catch (e) {
      throw refuse(what, dir, e);
    }
  },
  checkNotOperatorWritable: () => undefined,
};

/** Inputs opened as the operator who ran `sudo hapops`. */
export function operatorFiles(who: Credentials): InputFiles {
  return {
    readText: (path, what) => asOperator(who, () => ownFiles.readText(path, what)),
    list: (dir, what) => asOperator(who, () => ownFiles.list(dir, what)),
    /**
     * Root writes (--persist) must not land where the operator could swap a file or a directory
     * under it: the path has no symbolic link in it, and neither the file nor any directory above
     * it is writable by the operator (checked with their rights, so group and ACL grants count).
     */
    checkNotOperatorWritable(path, what) {
      let real: string;
      try {
        real = realpathSync(path);
      } catch (e) {
        throw refuse(what, path, e);
      }
      if (real !== path)
        throw new GuardError(
          `${what} ${path} goes through a symbolic link (to ${real}); under sudo hapops writes only to the real path, which root must set up`,
        );
      // access(2) checks the real uid (root here), and mode bits miss ACL grants: so each
      // directory is tried for real, creating (then removing) a file with the operator's
      // rights. An owner can always chmod; the file itself counts when the operator can write it.
      const canCreateIn = (dir: string): boolean =>
        asOperator(who, () => {
          const probe = join(dir, `.hapops-probe-${randomBytes(6).toString("hex")}`);
          try {
            closeSync(
              openSync(
                probe,
                constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
                0o600,
              ),
            );
          } catch {
            return false;
          }
          unlinkSync(probe);
          return true;
        });
      const canWriteFile = (file: string): boolean =>
        asOperator(who, () => {
          try {
            closeSync(
              openSync(file, constants.O_WRONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK),
            );
            return true;
          } catch {
            return false;
          }
        });
      const writable: string[] = [];
      let child = statSync(real);
      if (child.uid === who.uid || canWriteFile(real)) writable.push(real);
      for (let p = dirname(real); ; p = dirname(p)) {
        const st = statSync(p);
        // In a sticky directory (/tmp) others cannot rename or remove what they do not own.
        const sticky = (st.mode & 0o1000) !== 0 && child.uid !== who.uid;
        if (st.uid === who.uid || (!sticky && canCreateIn(p))) writable.push(p);
        if (p === dirname(p)) break;
        child = st;
      }
      if (writable.length > 0)
        throw new GuardError(
          `${what} ${path}: ${writable[0]} is writable by ${who.user}, so root will not write there under sudo (a swapped file or directory would redirect the write); ask an admin to fix its ownership`,
        );
    },
  };
}
