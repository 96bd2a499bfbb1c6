import { expect } from "vitest";

/** Run `fn`, expect it to throw a `cls`, and return the error for further checks. */
export function thrown<E extends Error>(cls: new (...args: never[]) => E, fn: () => unknown): E {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(cls);
    return e as E;
  }
  throw new Error(`expected ${cls.name} to be thrown`);
}
