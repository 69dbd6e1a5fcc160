/**
 * The lines a user copies to pull an image, built from the registry's public base URL (the one
 * function in server/http/proxies.ts). A registry served over plain HTTP gets the flags its clients
 * need for it (docker needs the host in `insecure-registries` instead; it has no flag).
 */
export interface PullCommands {
  /** `host[:port]/namespace/repository`, what clients call the image. */
  image: string;
  docker: string;
  podman: string;
  skopeo: string;
}

export function pullCommands(baseUrl: string, repository: string, reference: string): PullCommands {
  const url = new URL(baseUrl);
  // /v2/ is always at the host's root, whatever path the web UI is served under.
  const image = `${url.host}/${repository}`;
  // A digest follows `@`, a tag `:`.
  const ref = reference.includes(':') ? `${image}@${reference}` : `${image}:${reference}`;
  const plain = url.protocol === 'http:';
  const local = repository.slice(repository.lastIndexOf('/') + 1);
  return {
    image,
    docker: `docker pull ${ref}`,
    podman: `podman pull${plain ? ' --tls-verify=false' : ''} ${ref}`,
    skopeo: `skopeo copy --all${plain ? ' --src-tls-verify=false' : ''} docker://${ref} oci:${local}:${reference.includes(':') ? 'latest' : reference}`,
  };
}
