/**
 * Naming rules for users, groups, properties and services. Names become store keys and URL path
 * segments, so they are restricted to characters that need no escaping anywhere.
 *
 * Usernames are case-insensitive: they are folded to lower case on the way in, so `Alice` and
 * `alice` are one account (no look-alike accounts, and Docker already lowercases namespaces).
 */

/** 1–64 characters, starting with a letter or digit, then letters, digits, `.`, `_`, `-`. */
const USERNAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** Robot accounts are `namespace+name`; `+` is reserved for them and refused for people. */
const ROBOT_NAME = /^[a-z0-9][a-z0-9._-]{0,63}\+[a-z0-9][a-z0-9._-]{0,63}$/;
const GROUP_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** Property names follow RestAuth: printable ASCII without `/` and `:`, e.g. `date joined`. */
const PROPERTY_NAME = /^[\x20-\x7e]{1,64}$/;

export function normalizeName(name: string): string {
  return name.toLowerCase();
}

export function isValidUsername(name: string): boolean {
  return USERNAME.test(name);
}

export function isValidRobotName(name: string): boolean {
  return ROBOT_NAME.test(name);
}

export function isValidGroupName(name: string): boolean {
  return GROUP_NAME.test(name);
}

export function isValidPropertyName(name: string): boolean {
  return PROPERTY_NAME.test(name) && !/[/:]/.test(name) && name.trim() === name;
}

/** Passwords: 8–256 characters (bcrypt reads only the first 72 bytes; longer ones are pre-hashed). */
export function isAcceptablePassword(password: string): boolean {
  return password.length >= 8 && password.length <= 256;
}
