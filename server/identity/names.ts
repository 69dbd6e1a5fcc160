/**
 * Naming rules for users, groups, properties and services.
 *
 * Usernames are case-insensitive: they are folded to lower case (after Unicode NFC, so a composed
 * and a decomposed `é` are one letter) on the way in, so `Alice` and `alice` are one account (no
 * look-alike accounts, and Docker already lowercases namespaces).
 *
 * Two rule sets for people's names. `registry` names (the default) are also valid registry
 * namespaces and need no escaping anywhere. `restauth` names are what a RestAuth server accepted
 * (a wiki's users: `mati space`, `jürgen`); a RestAuth service declared with `userNames: restauth`
 * may create them. Such a name is never a valid namespace, so its user owns none (docs/identity.md).
 */

/** 1–64 characters, starting with a letter or digit, then letters, digits, `.`, `_`, `-`. */
const USERNAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** Robot accounts are `namespace+name`; `+` is reserved for them and refused for people. */
const ROBOT_NAME = /^[a-z0-9][a-z0-9._-]{0,63}\+[a-z0-9][a-z0-9._-]{0,63}$/;
const GROUP_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** Property names follow RestAuth: printable ASCII without `/` and `:`, e.g. `date joined`. */
const PROPERTY_NAME = /^[\x20-\x7e]{1,64}$/;

/**
 * RestAuth names: 1–64 characters of letters, marks, digits, punctuation, symbols and inner
 * spaces; not `/` or `:` (RestAuth refuses them: they split URLs and property names) and not `+`
 * (reserved for robots, `namespace+name`).
 */
const RESTAUTH_NAME = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]{1,64}$/u;

export type UserNameRules = 'registry' | 'restauth';

export function normalizeName(name: string): string {
  return name.normalize('NFC').toLowerCase();
}

export function isValidUsername(name: string): boolean {
  return USERNAME.test(name);
}

/** Whether a person may be created with this (normalized) name under these rules. */
export function isValidPersonName(name: string, rules: UserNameRules): boolean {
  if (isValidUsername(name)) return true;
  return rules === 'restauth' && isValidRestAuthName(name);
}

export function isValidRestAuthName(name: string): boolean {
  return (
    [...name].length <= 64 &&
    RESTAUTH_NAME.test(name) &&
    !/[/:+]/.test(name) &&
    name.trim() === name &&
    name === normalizeName(name)
  );
}

/** Whether an account of this (normalized) name may exist at all: a lookup answers null otherwise. */
export function isPossibleAccountName(name: string): boolean {
  return isValidUsername(name) || isValidRobotName(name) || isValidRestAuthName(name);
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

/** The shortest password wharf accepts unless a RestAuth service declares its own `passwordMinLength`. */
export const PASSWORD_MIN_LENGTH = 8;
/** No service may go below this (RestAuth's own default minimum). */
export const PASSWORD_MIN_LENGTH_FLOOR = 6;
export const PASSWORD_MAX_LENGTH = 256;

/** Passwords: 8 (or a service's minimum) to 256 characters (bcrypt reads only the first 72 bytes; longer ones are pre-hashed). */
export function isAcceptablePassword(password: string, minLength = PASSWORD_MIN_LENGTH): boolean {
  return password.length >= minLength && password.length <= PASSWORD_MAX_LENGTH;
}

export function passwordProblem(minLength = PASSWORD_MIN_LENGTH): string {
  return `password must be ${minLength} to ${PASSWORD_MAX_LENGTH} characters`;
}
