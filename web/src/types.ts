/** The JSON shapes the UI reads: crates.io's metadata API and the Quay-style API v1. */

export interface Settings {
  baseUrl: string;
  registryHost: string;
  openidProviders: string[];
  protocols: string[];
}

/** The AuthService session (`/auth/api/v1/session`): tokens and, for administrators, accounts. */
export interface Account {
  username: string;
  admin: boolean;
}

export interface Me {
  username: string;
  kind: string;
  super_user: boolean;
  organizations: { name: string }[];
}

export interface CrateSummary {
  name: string;
  description: string | null;
  max_version: string;
  newest_version?: string;
  max_stable_version?: string | null;
  default_version?: string | null;
  downloads: number;
  recent_downloads?: number | null;
  updated_at: string;
  created_at?: string;
  repository?: string | null;
  homepage?: string | null;
  documentation?: string | null;
  keywords?: string[] | null;
  categories?: string[] | null;
  exact_match?: boolean;
}

export interface Version {
  id: number;
  crate: string;
  num: string;
  yanked: boolean;
  yank_message?: string | null;
  license?: string | null;
  created_at: string;
  downloads: number;
  crate_size?: number | null;
  rust_version?: string | null;
  edition?: string | null;
  published_by?: { login: string; name?: string | null } | null;
}

export interface CrateReply {
  crate: CrateSummary;
  versions: Version[] | null;
  keywords?: { id: string; keyword: string }[] | null;
  categories?: { id: string; category: string }[] | null;
}

export interface Dependency {
  crate_id: string;
  req: string;
  kind: string;
  optional: boolean;
  target?: string | null;
  default_features?: boolean;
  features?: string[];
}

export interface Downloads {
  version_downloads: { version: number; downloads: number; date: string }[];
  meta?: { extra_downloads?: { date: string; downloads: number }[] };
}

export interface Owner {
  login: string;
  name?: string | null;
  kind?: string;
}

export interface RepositorySummary {
  namespace: string;
  name: string;
  description: string;
  is_public: boolean;
  kind?: string;
  can_write?: boolean;
  can_admin?: boolean;
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface Tag {
  name: string;
  manifest_digest: string | null;
  size?: number | null;
  start_ts?: number;
  last_modified?: string;
  is_manifest_list?: boolean;
  media_type?: string;
  platforms?: Platform[];
}

export interface TagPage {
  tags: Tag[];
  page: number;
  has_additional: boolean;
  total?: number;
}

export interface Referrer {
  digest: string;
  artifact_type?: string | null;
  media_type?: string;
  size?: number;
  annotations?: Record<string, string>;
  created?: string | null;
}

export interface PullLines {
  image?: string;
  docker?: string;
  podman?: string;
  skopeo?: string;
}

/** API v1's `GET …/tag/{tag}`. */
export interface TagDetail {
  name: string;
  digest: string;
  manifest_digest: string;
  media_type: string;
  is_manifest_list: boolean;
  size?: number | null;
  artifact_type?: string | null;
  created?: string | null;
  labels?: Record<string, string> | null;
  /** A single image's platform (from its config). */
  platform?: Platform | null;
  platforms?: {
    digest: string;
    media_type?: string;
    platform: Platform;
    size?: number;
    created?: string | null;
  }[];
  referrers?: Referrer[];
  pull?: PullLines;
  pull_by_digest?: PullLines;
}

export interface Token {
  id: string;
  name: string;
  kind: string;
  scopes: string[] | null;
  expiresAt: string | null;
  createdAt: string;
}

export interface Robot {
  name: string;
  description: string;
  created: string;
}
