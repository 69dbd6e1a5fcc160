import { useEffect, useState } from 'preact/hooks';

/**
 * Client-side routes under /ui/ (the server answers every /ui/… navigation with the same page):
 * history.pushState for links inside the UI, popstate for Back and Forward.
 */
export interface Location {
  path: string;
  params: URLSearchParams;
}

function current(): Location {
  return {
    path: window.location.pathname.replace(/\/+$/, '') || '/',
    params: new URLSearchParams(window.location.search),
  };
}

const listeners = new Set<() => void>();
window.addEventListener('popstate', () => {
  for (const listener of listeners) listener();
});

export function navigate(href: string, options: { replace?: boolean } = {}): void {
  if (options.replace) window.history.replaceState(null, '', href);
  else window.history.pushState(null, '', href);
  window.scrollTo(0, 0);
  for (const listener of listeners) listener();
}

export function useLocation(): Location {
  const [location, setLocation] = useState(current);
  useEffect(() => {
    const update = () => setLocation(current());
    listeners.add(update);
    return () => listeners.delete(update);
  }, []);
  return location;
}

/** A click on an in-app link (not a new-tab click) navigates without reloading. */
export function onLinkClick(event: MouseEvent): void {
  const anchor = (event.target as Element | null)?.closest?.('a');
  if (!anchor || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const href = anchor.getAttribute('href');
  if (!href?.startsWith('/ui') || anchor.target || anchor.hasAttribute('download')) return;
  event.preventDefault();
  navigate(href);
}

/** Matches `/ui/crates/:name`-style patterns; `*rest` takes the remaining segments (repository names). */
export function match(pattern: string, path: string): Record<string, string> | null {
  const parts = pattern.split('/').filter(Boolean);
  const segments = path.split('/').filter(Boolean);
  const result: Record<string, string> = {};
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as string;
    if (part.startsWith('*')) {
      if (i >= segments.length) return null;
      result[part.slice(1)] = segments.slice(i).map(decodeURIComponent).join('/');
      return result;
    }
    const segment = segments[i];
    if (segment === undefined) return null;
    if (part.startsWith(':')) result[part.slice(1)] = decodeURIComponent(segment);
    else if (part !== segment) return null;
  }
  return segments.length === parts.length ? result : null;
}
