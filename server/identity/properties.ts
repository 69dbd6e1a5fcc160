import { isValidPropertyName } from './names.ts';

/**
 * Bounds on a user's properties. They live in the user's document, which every password and token
 * check reads, so an unbounded value (a 9 MiB one was accepted) taxes every request of that user.
 * 4 KiB holds any profile value (a name, an address, a URL, an SSH public key); 64 properties are
 * far more than RestAuth clients set (`date joined`, e-mail, full name, language). Names are 1–64
 * characters (isValidPropertyName).
 */
export const MAX_PROPERTY_VALUE_BYTES = 4096;
export const MAX_PROPERTIES_PER_USER = 64;

/**
 * Why writing `changes` over a user's `current` properties is refused, or null. Every path that
 * writes properties asks this: user creation, one property, several at once. A user already over
 * the count (from before these bounds) may still change its existing properties, not add more.
 */
export function propertiesProblem(
  current: Readonly<Record<string, string>>,
  changes: Readonly<Record<string, string>>,
): string | null {
  for (const [name, value] of Object.entries(changes)) {
    if (!isValidPropertyName(name))
      return `invalid property name ${JSON.stringify(name.slice(0, 80))}: 1 to 64 printable ASCII characters, no / or :`;
    if (Buffer.byteLength(value) > MAX_PROPERTY_VALUE_BYTES)
      return `property ${name} is longer than ${MAX_PROPERTY_VALUE_BYTES} bytes`;
  }
  const before = Object.keys(current).length;
  const after = new Set([...Object.keys(current), ...Object.keys(changes)]).size;
  if (after > MAX_PROPERTIES_PER_USER && after > before)
    return `a user has at most ${MAX_PROPERTIES_PER_USER} properties`;
  return null;
}
