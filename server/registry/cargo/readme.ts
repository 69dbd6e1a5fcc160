import type sanitizeHtml from 'sanitize-html';

/**
 * A crate's README as crates.io shows it: CommonMark (with GitHub's tables and strikethrough)
 * rendered to HTML, inline HTML allowed, and the result passed through an allow-list sanitizer, so
 * no script, event handler, `javascript:` URL, style or frame survives. Rendered once at publish
 * and stored; the readme route serves the stored HTML.
 */
/**
 * The renderer is loaded on the first README, not at start-up: markdown-it and sanitize-html with
 * their dependencies add about 25 MB to every registry process, and only a publish needs them.
 */
let renderer: Promise<(text: string) => string> | null = null;

function loadRenderer(): Promise<(text: string) => string> {
  renderer ??= Promise.all([import('markdown-it'), import('sanitize-html')]).then(
    ([{ default: MarkdownIt }, { default: sanitize }]) => {
      const markdown = new MarkdownIt({ html: true, linkify: true, typographer: false });
      const options = sanitizeOptions(sanitize);
      return (text: string) => sanitize(markdown.render(text), options);
    },
  );
  return renderer;
}

const sanitizeOptions = (sanitize: typeof sanitizeHtml): sanitizeHtml.IOptions => ({
  allowedTags: [
    ...sanitize.defaults.allowedTags,
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
    a: sanitize.simpleTransform('a', { rel: 'nofollow noopener noreferrer' }),
  },
});

/** README markdown → sanitized HTML (crates.io shows a README of any size up to the publish limit). */
export async function renderReadme(text: string): Promise<string> {
  return (await loadRenderer())(text);
}
