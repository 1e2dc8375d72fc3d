//! Which store the daemon uses: `--store s3://bucket/prefix` (or
//! `WHEELWRIGHT_STORE`, or `[store] url` in the configuration file), else
//! the local store under the data directory.

use std::time::Duration;

use serde::Deserialize;

/// How downloads of a shared store's objects reach clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Downloads {
    /// Through the daemon, which streams the object (ETag, Range, caching).
    #[default]
    Proxy,
    /// A `302` to a presigned GET of the object, valid for a short time.
    Redirect,
}

/// `[store]` in the configuration file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StoreFileConfig {
    /// `s3://bucket/prefix`; absent: the local store.
    pub url: Option<String>,
    /// The S3 API's base URL (`AWS_ENDPOINT_URL` otherwise).
    pub endpoint: Option<String>,
    /// Region (`AWS_REGION` otherwise).
    pub region: Option<String>,
    /// Access key (`AWS_ACCESS_KEY_ID` otherwise).
    pub access_key_id: Option<String>,
    /// Secret key (`AWS_SECRET_ACCESS_KEY` otherwise).
    pub secret_access_key: Option<String>,
    /// `proxy` or `redirect`.
    pub downloads: Option<Downloads>,
    /// How long a presigned download URL is valid.
    pub redirect_expiry_secs: Option<u64>,
}

/// An S3-compatible store's place and credentials. What is not set here
/// comes from the usual `AWS_*` environment variables.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// The bucket.
    pub bucket: String,
    /// Key prefix inside it, without slashes at either end (may be empty).
    pub prefix: String,
    /// The S3 API's base URL; `http://` is allowed (a server on loopback).
    pub endpoint: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Access key.
    pub access_key_id: Option<String>,
    /// Secret key.
    pub secret_access_key: Option<String>,
    /// How downloads reach clients.
    pub downloads: Downloads,
    /// Lifetime of a presigned download URL.
    pub redirect_expiry: Duration,
}

impl std::fmt::Debug for S3Settings {
    // The secret never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "(masked)"))
            .field("downloads", &self.downloads)
            .field("redirect_expiry", &self.redirect_expiry)
            .finish()
    }
}

/// The store the daemon uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StoreConfig {
    /// `<data>/artifacts/`, the zero-setup default.
    #[default]
    Local,
    /// An S3-compatible object store.
    S3(S3Settings),
}

impl StoreConfig {
    /// The store from the `--store` URL and `--store-downloads` (flags or
    /// environment) over the file's `[store]`; an error says what is wrong.
    pub fn resolve(
        url: Option<String>,
        downloads: Option<Downloads>,
        file: Option<StoreFileConfig>,
    ) -> Result<StoreConfig, String> {
        let file = file.unwrap_or_default();
        let Some(url) = url.or(file.url).filter(|u| !u.is_empty()) else {
            if downloads == Some(Downloads::Redirect) || file.downloads == Some(Downloads::Redirect) {
                return Err("store downloads = \"redirect\" needs an S3 store (--store s3://bucket/prefix)".into());
            }
            return Ok(StoreConfig::Local);
        };
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            format!("store `{url}` is not an s3://bucket/prefix URL (leave it unset for the local store)")
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket_ok {
            return Err(format!("store `{url}`: `{bucket}` is not a valid bucket name"));
        }
        let prefix = prefix.trim_matches('/');
        let prefix_ok = prefix.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        });
        if !prefix.is_empty() && !prefix_ok {
            return Err(format!(
                "store `{url}`: the prefix may hold only letters, digits, `-`, `_`, `.` and `/` between names"
            ));
        }
        let expiry = file.redirect_expiry_secs.unwrap_or(300);
        if !(1..=3600).contains(&expiry) {
            return Err("store redirect-expiry-secs must be between 1 and 3600".into());
        }
        Ok(StoreConfig::S3(S3Settings {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            endpoint: file.endpoint.filter(|e| !e.is_empty()),
            region: file.region.filter(|r| !r.is_empty()),
            access_key_id: file.access_key_id.filter(|k| !k.is_empty()),
            secret_access_key: file.secret_access_key.filter(|k| !k.is_empty()),
            downloads: downloads.or(file.downloads).unwrap_or_default(),
            redirect_expiry: Duration::from_secs(expiry),
        }))
    }

    /// How long a presigned download URL lives when downloads are
    /// redirects; `None` when the daemon streams them (always, for the local store).
    pub fn redirect_expiry(&self) -> Option<Duration> {
        match self {
            StoreConfig::S3(s3) if s3.downloads == Downloads::Redirect => Some(s3.redirect_expiry),
            _ => None,
        }
    }

    /// For the start-up log: where, never the credentials.
    pub fn describe(&self) -> String {
        match self {
            StoreConfig::Local => "local".into(),
            StoreConfig::S3(s3) => format!(
                "s3://{}/{} endpoint={} downloads={:?}",
                s3.bucket,
                s3.prefix,
                s3.endpoint.as_deref().unwrap_or("(AWS_ENDPOINT_URL or AWS)"),
                s3.downloads
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bucket_and_prefix_and_refuses_what_is_not_an_s3_url() {
        let StoreConfig::S3(s3) = StoreConfig::resolve(Some("s3://wheels/team/a/".into()), None, None).unwrap() else {
            panic!("not S3")
        };
        assert_eq!((s3.bucket.as_str(), s3.prefix.as_str(), s3.downloads), ("wheels", "team/a", Downloads::Proxy));
        assert_eq!(StoreConfig::resolve(None, None, None).unwrap(), StoreConfig::Local);
        for bad in ["file:///tmp", "s3://", "s3://A_B/x", "s3://wheels/../x", "s3://wheels/a//b", "s3://wheels/a b"] {
            assert!(StoreConfig::resolve(Some(bad.into()), None, None).is_err(), "{bad}");
        }
        let redirect_local = StoreConfig::resolve(None, Some(Downloads::Redirect), None).unwrap_err();
        assert!(redirect_local.contains("needs an S3 store"), "{redirect_local}");
    }

    #[test]
    fn the_flag_beats_the_file_and_the_secret_is_masked() {
        let file = StoreFileConfig {
            url: Some("s3://from-file/p".into()),
            secret_access_key: Some("hunter2".into()),
            downloads: Some(Downloads::Redirect),
            ..StoreFileConfig::default()
        };
        let config = StoreConfig::resolve(Some("s3://from-flag".into()), Some(Downloads::Proxy), Some(file)).unwrap();
        let StoreConfig::S3(s3) = &config else { panic!("not S3") };
        assert_eq!((s3.bucket.as_str(), s3.prefix.as_str(), s3.downloads), ("from-flag", "", Downloads::Proxy));
        assert!(!format!("{config:?}").contains("hunter2") && !config.describe().contains("hunter2"));
    }
}
