import { parse as parseQuery } from 'node:querystring';
import type { FastifyInstance } from 'fastify';

/**
 * Content negotiation for the RestAuth API: the formats RestAuth's client libraries marshal with
 * (RestAuthCommon's JSON and form handlers), for request bodies and for answers.
 */
export type Format = 'json' | 'form';

export const MEDIA_TYPES: Record<Format, string> = {
  json: 'application/json',
  form: 'application/x-www-form-urlencoded',
};

/**
 * The format an `Accept` header asks for: the acceptable one with the highest quality (JSON when
 * they tie or no header is sent), null when it accepts neither (406).
 */
export function negotiate(accept: string | undefined): Format | null {
  if (accept === undefined || accept.trim() === '') return 'json';
  const quality: Record<Format, number> = { json: 0, form: 0 };
  for (const range of accept.split(',')) {
    const [mediaRange = '', ...parameters] = range.split(';').map((part) => part.trim().toLowerCase());
    const q = parameters.find((parameter) => parameter.startsWith('q='));
    const weight = q === undefined ? 1 : Number(q.slice(2));
    if (!Number.isFinite(weight)) continue;
    for (const format of Object.keys(MEDIA_TYPES) as Format[]) {
      const [type, subtype] = MEDIA_TYPES[format].split('/');
      const matches =
        mediaRange === '*/*' || mediaRange === `${type}/*` || mediaRange === `${type}/${subtype}`;
      if (matches) quality[format] = Math.max(quality[format], weight);
    }
  }
  if (quality.json <= 0 && quality.form <= 0) return null;
  return quality.form > quality.json ? 'form' : 'json';
}

/**
 * Request bodies this API reads: JSON and forms, nothing else (415). Registered inside the RestAuth
 * plugin, so other surfaces keep their own parsers. A form field sent twice becomes an array; the
 * handlers take its first value.
 */
export function registerBodyParsers(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    MEDIA_TYPES.json,
    { parseAs: 'string' },
    app.getDefaultJsonParser('error', 'error'),
  );
  app.addContentTypeParser(MEDIA_TYPES.form, { parseAs: 'string' }, (_request, body, done) =>
    done(null, parseQuery(body as string)),
  );
}

/** A value in a format: JSON as given, forms as RestAuthCommon's FormContentHandler writes them. */
export function serialize(format: Format, value: unknown): string {
  if (format === 'json') return JSON.stringify(value);
  if (typeof value === 'string') return new URLSearchParams({ str: value }).toString();
  if (Array.isArray(value))
    return new URLSearchParams(value.map((item): [string, string] => ['list', String(item)])).toString();
  return new URLSearchParams(Object.entries(value as Record<string, string>)).toString();
}
