//! The daemon's configuration: command-line flags over `WHEELWRIGHT_*`
//! environment variables over a TOML file over defaults, validated once at start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use wheelwright_workers::sandbox::{Helper, Limits};

/// Which isolation runs the build steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SandboxKind {
    /// bubblewrap, plus Landlock where the kernel has it.
    Bwrap,
    /// No isolation: only for sources you trust.
    None,
}

/// Who may publish a project into the package index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Ownership {
    /// A project belongs to whoever first published it (a token, a GitHub
    /// repository, or the daemon itself when it has no tokens); uploads of
    /// it by anyone else are refused.
    FirstPublisher,
    /// Anyone who may build may publish any project (file names still keep
    /// their first bytes).
    Open,
}

/// `wheelwright serve` flags; each also comes from `WHEELWRIGHT_<NAME>`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// A TOML configuration file.
    #[arg(long, env = "WHEELWRIGHT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "WHEELWRIGHT_BIND")]
    pub bind: Option<SocketAddr>,
    /// Where the database, sources and artifacts live [default: ~/.local/share/wheelwright].
    #[arg(long, env = "WHEELWRIGHT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where builds' work directories go, one per running build, removed when it ends
    /// [default: DATA_DIR/jobs]. A tmpfs (e.g. /dev/shm/wheelwright) spares the file system the
    /// files every build creates and deletes; its contents then take memory (at most the
    /// per-build disk budget times the workers). Must be a directory only this user can write.
    #[arg(long, env = "WHEELWRIGHT_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    /// Builds that run at once [default: the number of CPUs].
    #[arg(long, env = "WHEELWRIGHT_WORKERS")]
    pub workers: Option<usize>,
    /// Bearer tokens that may write (comma-separated).
    #[arg(long, env = "WHEELWRIGHT_TOKENS", value_delimiter = ',')]
    pub tokens: Option<Vec<String>>,
    /// Largest upload in bytes [default: 32 MiB].
    #[arg(long, env = "WHEELWRIGHT_MAX_UPLOAD")]
    pub max_upload: Option<u64>,
    /// Allow listening on a non-loopback address without tokens.
    #[arg(long, env = "WHEELWRIGHT_INSECURE")]
    pub insecure: bool,
    /// Isolation of the build steps [default: bwrap].
    #[arg(long, value_enum, env = "WHEELWRIGHT_SANDBOX")]
    pub sandbox: Option<SandboxKind>,
    /// Interpreters for smoke tests (comma-separated) [default: every CPython 3.8+ found].
    #[arg(long, env = "WHEELWRIGHT_PYTHONS", value_delimiter = ',')]
    pub pythons: Option<Vec<PathBuf>>,
    /// Run the smoke test on Linux wheels [default: true].
    #[arg(long, env = "WHEELWRIGHT_SMOKE")]
    pub smoke: Option<bool>,
    /// Seconds each build step may take [default: 60].
    #[arg(long, env = "WHEELWRIGHT_STEP_TIMEOUT")]
    pub step_timeout: Option<u64>,
    /// Seconds a claimed job stays leased without a heartbeat [default: 30].
    #[arg(long, env = "WHEELWRIGHT_LEASE_SECS")]
    pub lease_secs: Option<u64>,
    /// Attempts before a build that keeps failing on the host is given up [default: 3].
    #[arg(long, env = "WHEELWRIGHT_MAX_ATTEMPTS")]
    pub max_attempts: Option<u32>,
    /// Cache for import libraries and smoke-test environments [default: ~/.cache/wheelwright].
    #[arg(long, env = "WHEELWRIGHT_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Seconds running builds get to finish at shutdown before they are handed back [default: 30].
    #[arg(long, env = "WHEELWRIGHT_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// Milliseconds a database write waits for another writer before answering 503 [default: 10000].
    #[arg(long, env = "WHEELWRIGHT_DB_BUSY_TIMEOUT_MS")]
    pub db_busy_timeout_ms: Option<u64>,
    /// The address people reach this server at, for links in commit statuses [default: http://BIND].
    #[arg(long, env = "WHEELWRIGHT_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// More `Host` values this server answers to (comma-separated `name[:port]`),
    /// beyond the bind address and the public URL's host.
    #[arg(long, env = "WHEELWRIGHT_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Option<Vec<String>>,
    /// GitHub webhook secret; without one the webhook is off.
    #[arg(long, env = "WHEELWRIGHT_GITHUB_SECRET")]
    pub github_secret: Option<String>,
    /// Repositories (`owner/name`, comma-separated) whose pushes are built.
    #[arg(long, env = "WHEELWRIGHT_GITHUB_REPOS", value_delimiter = ',')]
    pub github_repos: Option<Vec<String>>,
    /// Clone URLs must start with this [default: <https://github.com/>].
    #[arg(long, env = "WHEELWRIGHT_GITHUB_CLONE_BASE")]
    pub github_clone_base: Option<String>,
    /// GitHub API base, for GitHub Enterprise [default: <https://api.github.com>].
    #[arg(long, env = "WHEELWRIGHT_GITHUB_API")]
    pub github_api: Option<String>,
    /// Token for posting commit statuses.
    #[arg(long, env = "WHEELWRIGHT_GITHUB_TOKEN")]
    pub github_token: Option<String>,
    /// Who may publish a project: its first publisher, or anyone [default: first-publisher].
    #[arg(long, value_enum, env = "WHEELWRIGHT_INDEX_OWNERSHIP")]
    pub index_ownership: Option<Ownership>,
    /// Builds one token (or, without tokens, one client address) may have queued [default: 100].
    #[arg(long, env = "WHEELWRIGHT_MAX_QUEUED_PER_CLIENT")]
    pub max_queued_per_client: Option<u32>,
    /// The database: `postgres://user[:password]@host[:port]/name` (a queue several daemons share) or
    /// `sqlite:PATH` [default: SQLite in the data directory].
    #[arg(long, env = "WHEELWRIGHT_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Most PostgreSQL connections this daemon opens [default: 16].
    #[arg(long, env = "WHEELWRIGHT_DB_MAX_CONNECTIONS")]
    pub db_max_connections: Option<u32>,
    /// Milliseconds a request waits for a free database connection before answering 503 [default: 5000].
    #[arg(long, env = "WHEELWRIGHT_DB_ACQUIRE_TIMEOUT_MS")]
    pub db_acquire_timeout_ms: Option<u64>,
    /// Artifact store: `s3://bucket/prefix` (endpoint and credentials from
    /// `[store]` or the `AWS_*` variables) [default: the local store under the data directory].
    #[arg(long, env = "WHEELWRIGHT_STORE")]
    pub store: Option<String>,
    /// How downloads from an S3 store reach clients [default: proxy].
    #[arg(long, value_enum, env = "WHEELWRIGHT_STORE_DOWNLOADS")]
    pub store_downloads: Option<crate::store::Downloads>,
}

/// The configuration file's keys (all optional; unknown keys are errors).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    bind: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    work_dir: Option<PathBuf>,
    workers: Option<usize>,
    tokens: Option<Vec<String>>,
    max_upload: Option<u64>,
    insecure: Option<bool>,
    sandbox: Option<SandboxKind>,
    pythons: Option<Vec<PathBuf>>,
    smoke: Option<bool>,
    lease_secs: Option<u64>,
    max_attempts: Option<u32>,
    cache_dir: Option<PathBuf>,
    shutdown_grace_secs: Option<u64>,
    db_busy_timeout_ms: Option<u64>,
    public_url: Option<String>,
    allowed_hosts: Option<Vec<String>>,
    limits: Option<Limits>,
    github: Option<GithubFile>,
    max_queued_per_client: Option<u32>,
    index: Option<IndexFileConfig>,
    database_url: Option<String>,
    db_max_connections: Option<u32>,
    db_acquire_timeout_ms: Option<u64>,
    store: Option<crate::store::StoreFileConfig>,
}

/// `[index]` in the configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct IndexFileConfig {
    ownership: Option<Ownership>,
}

/// `[github]` in the configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct GithubFile {
    secret: Option<String>,
    repos: Option<Vec<String>>,
    clone_base: Option<String>,
    api: Option<String>,
    token: Option<String>,
    build_tags: Option<bool>,
    answer_within_ms: Option<u64>,
}

/// The GitHub integration.
#[derive(Debug, Clone)]
pub struct GithubConfig {
    /// Webhook secret; `None` disables the webhook.
    pub secret: Option<String>,
    /// `owner/name` allowed to trigger builds.
    pub repos: Vec<String>,
    /// Prefix every clone URL must have (ends with `/`).
    pub clone_base: String,
    /// API base URL.
    pub api: String,
    /// Token for commit statuses; `None` posts none.
    pub token: Option<String>,
    /// Build pushes of tags too.
    pub build_tags: bool,
    /// How long the webhook waits for a fetch before answering without the
    /// build (GitHub gives up on a delivery after 10 s).
    pub answer_within: Duration,
}

/// The effective, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listening address.
    pub bind: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Where builds' work directories go (`--work-dir`; `data_dir/jobs` by default).
    pub work_dir: PathBuf,
    /// Concurrent builds.
    pub workers: usize,
    /// Bearer tokens for writes; empty means writes are open (loopback only).
    pub tokens: Vec<String>,
    /// Upload size limit in bytes.
    pub max_upload: u64,
    /// Listening beyond loopback without tokens was allowed explicitly.
    pub insecure: bool,
    /// Step isolation.
    pub sandbox: SandboxKind,
    /// The Landlock exec helper (this binary in `serve`).
    pub helper: Option<Helper>,
    /// Interpreters; empty means discover.
    pub pythons: Vec<PathBuf>,
    /// Run smoke tests.
    pub smoke: bool,
    /// Per-step limits.
    pub limits: Limits,
    /// Job lease.
    pub lease: Duration,
    /// Attempts per job for infrastructure failures.
    pub max_attempts: u32,
    /// Shared cache directory.
    pub cache_dir: PathBuf,
    /// Time running builds get at shutdown.
    pub shutdown_grace: Duration,
    /// How long a database write waits for the lock.
    pub db_busy_timeout: Duration,
    /// Base of links to this server.
    pub public_url: String,
    /// Extra `Host` values answered (lowercase), beyond those of `bind` and
    /// `public_url`.
    pub allowed_hosts: Vec<String>,
    /// GitHub webhook and statuses.
    pub github: GithubConfig,
    /// Who may publish a project (`[index] ownership`).
    pub index_ownership: Ownership,
    /// Builds one submitter may have queued before uploads answer 429.
    pub max_queued_per_client: u32,
    /// Which database, and its pool.
    pub database: crate::db::DatabaseSettings,
    /// Where artifacts (and, when shared, sources) are kept.
    pub store: crate::store::StoreConfig,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The file is not valid (unknown keys included).
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range or contradicts another.
    #[error("{0}")]
    Refused(String),
}

impl Config {
    /// Flags (and their environment variables) over the file over defaults.
    pub fn load(args: ServeArgs) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let mut limits = file.limits.unwrap_or_default();
        if let Some(secs) = args.step_timeout {
            limits.timeout_secs = secs;
            limits.cpu_secs = secs;
        }
        let data_dir = args.data_dir.or(file.data_dir).unwrap_or_else(default_data_dir);
        let config = Config {
            bind: args.bind.or(file.bind).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            work_dir: args.work_dir.or(file.work_dir).unwrap_or_else(|| data_dir.join("jobs")),
            data_dir,
            workers: args
                .workers
                .or(file.workers)
                .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)),
            tokens: args.tokens.or(file.tokens).unwrap_or_default().into_iter().filter(|t| !t.is_empty()).collect(),
            max_upload: args.max_upload.or(file.max_upload).unwrap_or(32 << 20),
            insecure: args.insecure || file.insecure.unwrap_or(false),
            sandbox: args.sandbox.or(file.sandbox).unwrap_or(SandboxKind::Bwrap),
            helper: None,
            pythons: args.pythons.or(file.pythons).unwrap_or_default(),
            smoke: args.smoke.or(file.smoke).unwrap_or(true),
            limits,
            lease: Duration::from_secs(args.lease_secs.or(file.lease_secs).unwrap_or(30)),
            max_attempts: args.max_attempts.or(file.max_attempts).unwrap_or(3),
            cache_dir: args.cache_dir.or(file.cache_dir).unwrap_or_else(wheelwright_workers::default_cache_dir),
            shutdown_grace: Duration::from_secs(args.shutdown_grace_secs.or(file.shutdown_grace_secs).unwrap_or(30)),
            db_busy_timeout: Duration::from_millis(
                args.db_busy_timeout_ms.or(file.db_busy_timeout_ms).unwrap_or(10_000),
            ),
            public_url: String::new(),
            allowed_hosts: args
                .allowed_hosts
                .or(file.allowed_hosts)
                .unwrap_or_default()
                .into_iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
            github: GithubConfig {
                secret: None,
                repos: Vec::new(),
                clone_base: String::new(),
                api: String::new(),
                token: None,
                build_tags: true,
                answer_within: Duration::from_secs(8),
            },
            index_ownership: args
                .index_ownership
                .or(file.index.and_then(|i| i.ownership))
                .unwrap_or(Ownership::FirstPublisher),
            max_queued_per_client: args.max_queued_per_client.or(file.max_queued_per_client).unwrap_or(100),
            database: crate::db::DatabaseSettings {
                url: match args.database_url.or(file.database_url).filter(|u| !u.is_empty()) {
                    Some(url) => crate::db::DatabaseUrl::parse(&url).map_err(ConfigError::Refused)?,
                    None => crate::db::DatabaseUrl::Sqlite(None),
                },
                max_connections: args.db_max_connections.or(file.db_max_connections).unwrap_or(16),
                acquire_timeout: Duration::from_millis(
                    args.db_acquire_timeout_ms.or(file.db_acquire_timeout_ms).unwrap_or(5_000),
                ),
                busy_timeout: Duration::ZERO,
            },
            store: crate::store::StoreConfig::resolve(args.store, args.store_downloads, file.store)
                .map_err(ConfigError::Refused)?,
        };
        let mut config = config;
        config.database.busy_timeout = config.db_busy_timeout;
        config.public_url = args
            .public_url
            .or(file.public_url)
            .unwrap_or_else(|| format!("http://{}", config.bind))
            .trim_end_matches('/')
            .to_string();
        let gh = file.github.unwrap_or_default();
        config.github = GithubConfig {
            secret: args.github_secret.or(gh.secret).filter(|s| !s.is_empty()),
            repos: args.github_repos.or(gh.repos).unwrap_or_default().into_iter().filter(|r| !r.is_empty()).collect(),
            // Ends with '/': clone URLs are compared by whole path segments.
            clone_base: {
                let base = args.github_clone_base.or(gh.clone_base).unwrap_or_else(|| "https://github.com/".into());
                if base.ends_with('/') {
                    base
                } else {
                    format!("{base}/")
                }
            },
            api: args
                .github_api
                .or(gh.api)
                .unwrap_or_else(|| "https://api.github.com".into())
                .trim_end_matches('/')
                .to_string(),
            token: args.github_token.or(gh.token).filter(|t| !t.is_empty()),
            build_tags: gh.build_tags.unwrap_or(true),
            answer_within: Duration::from_millis(gh.answer_within_ms.unwrap_or(8000)),
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks values and combinations.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.workers == 0 {
            return Err(ConfigError::Refused("workers must be at least 1".into()));
        }
        if self.lease < Duration::from_secs(1) {
            return Err(ConfigError::Refused("lease-secs must be at least 1".into()));
        }
        if self.max_attempts == 0 {
            return Err(ConfigError::Refused("max-attempts must be at least 1".into()));
        }
        if self.max_queued_per_client == 0 {
            return Err(ConfigError::Refused(
                "max-queued-per-client must be at least 1 (set it high to allow large bursts)".into(),
            ));
        }
        if self.database.max_connections < 2 {
            return Err(ConfigError::Refused(
                "db-max-connections must be at least 2 (the workers and the requests share the pool)".into(),
            ));
        }
        if self.max_upload < 1024 {
            return Err(ConfigError::Refused("max-upload must be at least 1024 bytes".into()));
        }
        if !self.bind.ip().is_loopback() && self.tokens.is_empty() && !self.insecure {
            return Err(ConfigError::Refused(format!(
                "refusing to listen on {} without any token: anyone could build there. Set WHEELWRIGHT_TOKENS \
                 (or `tokens` in the config file), or pass --insecure",
                self.bind
            )));
        }
        Ok(())
    }

    /// The effective configuration for the start-up log, secrets masked.
    pub fn describe(&self) -> String {
        let tokens =
            if self.tokens.is_empty() { "none".to_string() } else { format!("{} (masked)", self.tokens.len()) };
        let github = match &self.github.secret {
            None => "off".to_string(),
            Some(_) => format!(
                "webhook on (secret masked) repos={} clone_base={} api={} statuses={}",
                self.github.repos.join(","),
                self.github.clone_base,
                self.github.api,
                if self.github.token.is_some() { "on (token masked)" } else { "off" }
            ),
        };
        format!(
            "bind={} data_dir={} work_dir={} workers={} tokens={} max_upload={} insecure={} sandbox={:?} smoke={} \
             step_timeout={}s lease={}s max_attempts={} cache_dir={} pythons={} public_url={} allowed_hosts={} \
             github={} index_ownership={:?} max_queued_per_client={} database={} db_max_connections={} store={}",
            self.bind,
            self.data_dir.display(),
            self.work_dir.display(),
            self.workers,
            tokens,
            self.max_upload,
            self.insecure,
            self.sandbox,
            self.smoke,
            self.limits.timeout_secs,
            self.lease.as_secs(),
            self.max_attempts,
            self.cache_dir.display(),
            if self.pythons.is_empty() {
                "discover".to_string()
            } else {
                self.pythons.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(",")
            },
            self.public_url,
            if self.allowed_hosts.is_empty() { "-".to_string() } else { self.allowed_hosts.join(",") },
            github,
            self.index_ownership,
            self.max_queued_per_client,
            self.database.url,
            self.database.max_connections,
            self.store.describe()
        )
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Read { path: path.display().to_string(), message: e.to_string() })?;
    toml::from_str(&text).map_err(|e| ConfigError::Invalid {
        path: path.display().to_string(),
        message: e.to_string().trim_end().to_string(),
    })
}

/// `$XDG_DATA_HOME/wheelwright`, else `~/.local/share/wheelwright`.
fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(dir).join("wheelwright");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/wheelwright"),
        None => PathBuf::from("wheelwright-data"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wheelwright.toml");
        std::fs::write(&file, "workers = 3\nmax-upload = 2048\n[limits]\ntimeout-secs = 9\n").unwrap();
        let args = ServeArgs { config: Some(file.clone()), workers: Some(5), ..ServeArgs::default() };
        let config = Config::load(args).unwrap();
        assert_eq!(config.workers, 5);
        assert_eq!(config.max_upload, 2048);
        assert_eq!(config.limits.timeout_secs, 9);
        assert_eq!(config.bind, SocketAddr::from(([127, 0, 0, 1], 8080)));
    }

    #[test]
    fn the_work_directory_is_in_the_data_directory_unless_a_flag_or_the_file_says_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let config = Config::load(ServeArgs { data_dir: Some(data.clone()), ..ServeArgs::default() }).unwrap();
        assert_eq!(config.work_dir, data.join("jobs"));
        let file = dir.path().join("wheelwright.toml");
        std::fs::write(&file, "work-dir = \"/dev/shm/ww\"\n").unwrap();
        let args = ServeArgs { config: Some(file.clone()), data_dir: Some(data.clone()), ..ServeArgs::default() };
        assert_eq!(Config::load(args).unwrap().work_dir, PathBuf::from("/dev/shm/ww"));
        let args = ServeArgs { config: Some(file), work_dir: Some("/srv/ww".into()), ..ServeArgs::default() };
        assert_eq!(Config::load(args).unwrap().work_dir, PathBuf::from("/srv/ww"));
    }

    #[test]
    fn ownership_and_the_queue_limit_come_from_flags_or_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wheelwright.toml");
        std::fs::write(&file, "max-queued-per-client = 7\n[index]\nownership = \"open\"\n").unwrap();
        let config = Config::load(ServeArgs { config: Some(file.clone()), ..ServeArgs::default() }).unwrap();
        assert_eq!((config.index_ownership, config.max_queued_per_client), (Ownership::Open, 7));
        let args = ServeArgs {
            config: Some(file),
            index_ownership: Some(Ownership::FirstPublisher),
            max_queued_per_client: Some(9),
            ..ServeArgs::default()
        };
        let config = Config::load(args).unwrap();
        assert_eq!((config.index_ownership, config.max_queued_per_client), (Ownership::FirstPublisher, 9));
        let defaults = Config::load(ServeArgs::default()).unwrap();
        assert_eq!((defaults.index_ownership, defaults.max_queued_per_client), (Ownership::FirstPublisher, 100));
        let zero = Config::load(ServeArgs { max_queued_per_client: Some(0), ..ServeArgs::default() }).unwrap_err();
        assert!(zero.to_string().starts_with("max-queued-per-client must be at least 1"), "{zero}");
    }

    #[test]
    fn unknown_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wheelwright.toml");
        std::fs::write(&file, "wokers = 3\n").unwrap();
        let err = Config::load(ServeArgs { config: Some(file), ..ServeArgs::default() }).unwrap_err().to_string();
        assert!(err.contains("unknown field `wokers`"), "{err}");
    }

    #[test]
    fn a_public_address_needs_a_token_or_insecure() {
        let public = SocketAddr::from(([0, 0, 0, 0], 8080));
        let err = Config::load(ServeArgs { bind: Some(public), ..ServeArgs::default() }).unwrap_err();
        assert!(err.to_string().starts_with("refusing to listen on 0.0.0.0:8080 without any token"));
        assert!(Config::load(ServeArgs { bind: Some(public), insecure: true, ..ServeArgs::default() }).is_ok());
        let tokens = Some(vec!["s3cret".to_string()]);
        let config = Config::load(ServeArgs { bind: Some(public), tokens, ..ServeArgs::default() }).unwrap();
        assert!(config.describe().contains("tokens=1 (masked)") && !config.describe().contains("s3cret"));
    }
}
