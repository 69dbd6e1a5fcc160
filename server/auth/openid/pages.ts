import type { MeReply } from './accounts.ts';

/**
 * The pages a person sees during an OpenID login. Plain HTML with inline styles and no scripts
 * (the Content-Security-Policy forbids them), so a token page cannot run anything injected.
 */

export const PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  pragma: 'no-cache',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'content-security-policy':
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
};

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function layout(title: string, body: string, tone: 'ok' | 'refused' | 'error' | 'neutral'): string {
  const accent = { ok: '#1a7f37', refused: '#b35900', error: '#cf222e', neutral: '#0969da' }[tone];
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>${escapeHtml(title)} · wharf</title>
<style>
body{font-family:"Liberation Sans",Arial,sans-serif;background:#f6f8fa;color:#1f2328;margin:0;padding:40px 16px;line-height:1.5}
main{max-width:720px;margin:0 auto;background:#fff;border:1px solid #d0d7de;border-top:6px solid ${accent};border-radius:8px;padding:28px 32px}
h1{font-size:1.6em;margin:0 0 12px;color:${accent}}
h2{font-size:1.1em;margin:24px 0 8px}
code,pre{font-family:"Liberation Mono",monospace;font-size:.95em}
.token{display:block;user-select:all;background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:12px;word-break:break-all;font-size:1.05em}
pre{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:12px;overflow-x:auto}
.muted{color:#59636e;font-size:.92em}
a.button{display:inline-block;margin:8px 8px 0 0;padding:8px 14px;border-radius:6px;border:1px solid #d0d7de;background:#f6f8fa;color:#1f2328;text-decoration:none}
.label{font-weight:bold}
footer{margin-top:28px;font-size:.85em;color:#59636e}
</style></head>
<body><main>${body}<footer>wharf registry · OpenID Connect sign-in</footer></main></body></html>
`;
}

/** The token page after `/me` or `/replace_token`; the same facts as the JSON reply. */
export function tokenPage(reply: MeReply, account: string, replaced: boolean, registryHost: string): string {
  const token = 'existing_token' in reply ? reply.existing_token : reply.new_token;
  const headline = replaced
    ? 'Your token was replaced'
    : 'existing_token' in reply
      ? 'Your registry token'
      : 'Your new registry token';
  const revoked =
    'revoked_token' in reply && reply.revoked_token
      ? `<p class="muted">The previous token <code>${escapeHtml(mask(reply.revoked_token))}</code> is revoked: it no longer works anywhere.</p>`
      : '';
  const body = `<h1>${escapeHtml(headline)}</h1>
<p>Signed in as <span class="label">${escapeHtml(reply.username)}</span> (wharf account <code>${escapeHtml(account)}</code>).</p>
<h2>Token</h2>
<code class="token" id="token">${escapeHtml(token)}</code>
<p class="muted">Keep it secret, like a password. It is your one active token: signing in again shows this same token until you replace it.</p>
${revoked}
<h2>Use it</h2>
<pre>cargo login --registry &lt;registry-name&gt;   # paste the token when asked
docker login ${escapeHtml(registryHost)} --username ${escapeHtml(account)}   # the token is the password</pre>
<p><a class="button" href="/ktra/api/v1/openid/replace_token">Replace this token</a></p>
<details><summary class="muted">JSON reply (what API clients receive)</summary><pre>${escapeHtml(JSON.stringify(reply, null, 2))}</pre></details>`;
  return layout(headline, body, 'ok');
}

export function refusalPage(title: string, message: string, detail?: string): string {
  const body = `<h1>${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p>${detail ? `<p class="muted">${escapeHtml(detail)}</p>` : ''}`;
  return layout(title, body, 'refused');
}

export function errorPage(title: string, message: string, detail?: string): string {
  const body = `<h1>${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p>${
    detail ? `<pre>${escapeHtml(detail)}</pre>` : ''
  }<p><a class="button" href="/ktra/api/v1/openid/me">Sign in again</a></p>`;
  return layout(title, body, 'error');
}

export function providerChoicePage(providers: string[], path: string): string {
  const links = providers
    .map(
      (name) =>
        `<a class="button" href="${escapeHtml(path)}?provider=${encodeURIComponent(name)}">${escapeHtml(name)}</a>`,
    )
    .join('');
  return layout(
    'Sign in',
    `<h1>Sign in</h1><p>Choose where you have an account:</p><p>${links}</p>`,
    'neutral',
  );
}

/** A token shown partly, enough to recognise it, too little to use it. */
function mask(token: string): string {
  return token.length > 14 ? `${token.slice(0, 10)}…${token.slice(-4)}` : '…';
}
