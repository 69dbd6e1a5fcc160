import MarkdownIt from 'markdown-it';
import sanitizeHtml from 'sanitize-html';

/**
 * A crate's README as crates.io shows it: CommonMark (with GitHub's tables and strikethrough)
 * rendered to HTML, inline HTML allowed, and the result passed through an allow-list sanitizer, so
 * no script, event handler, `javascript:` URL, style or frame survives. Rendered once at publish
 * and stored; the readme route serves the stored HTML.
 */
const markdown = new MarkdownIt({ html: true, linkify: true, typographer: false });

const SANITIZE: sanitizeHtml.IOptions = {
  allowedTags: [
    ...sanitizeHtml.defaults.allowedTags,
    'img',
    'picture',
    'source',
    'details',
    'summary',
    'del',
    's',
    'ins',
    'sup',
    'sub',
    'kbd',
  ],
  allowedAttributes: {
    a: ['href', 'title', 'id', 'name', 'rel'],
    img: ['src', 'alt', 'title', 'width', 'height', 'align'],
    source: ['srcset', 'media', 'type'],
    code: ['class'],
    pre: ['class'],
    div: ['align'],
    p: ['align'],
    h1: ['id', 'align'],
    h2: ['id', 'align'],
    h3: ['id'],
    h4: ['id'],
    h5: ['id'],
    h6: ['id'],
    td: ['align', 'colspan', 'rowspan'],
    th: ['align', 'colspan', 'rowspan'],
    ol: ['start'],
    details: ['open'],
  },
  allowedClasses: { code: [/^language-[\w+#.-]+$/], pre: [/^language-[\w+#.-]+$/] },
  allowedSchemes: ['http', 'https', 'mailto'],
  allowedSchemesByTag: { img: ['http', 'https', 'data'] },
  allowProtocolRelative: false,
  transformTags: {
    // Links from user content must not pass this registry's context (or a session) along.
    a: sanitizeHtml.simpleTransform('a', { rel: 'nofollow noopener noreferrer' }),
  },
};

/** README markdown → sanitized HTML (crates.io shows a README of any size up to the publish limit). */
export function renderReadme(text: string): string {
  return sanitizeHtml(markdown.render(text), SANITIZE);
}
