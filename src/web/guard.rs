//! What every request and response passes through, pages and API alike:
//!
//! - a `Host` allow-list (DNS rebinding: a page on `evil.example` that
//!   resolves to 127.0.0.1 must not reach a tokenless loopback daemon, nor see
//!   its name in the pip line), derived from the address actually bound, the
//!   public URL and `allowed-hosts`; any other `Host` is answered 421;
//! - a cross-site check on every state-changing request (CSRF of upload,
//!   cancel and rebuild): `Sec-Fetch-Site` other than `same-origin`/`none`, or
//!   an `Origin` that is not this server, is 403. Requests with neither header
//!   (curl, the CLI, CI, GitHub's webhook) are not browsers' and pass;
//! - security headers on every response: a Content-Security-Policy that
//!   allows only this server's own files (the pages have no inline script or
//!   style), `frame-ancestors 'none'` and `X-Frame-Options: DENY`,
//!   `X-Content-Type-Options: nosniff` and a same-origin `Referrer-Policy`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::Config;
use crate::error::ApiError;

/// The policy: the pages load their CSS, script and images from this server
/// only, post forms only to it, and may not be framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; \
     object-src 'none'";

/// The `Host` values this server answers to, lowercase `name[:port]`.
#[derive(Debug, Clone)]
pub struct Guard {
    hosts: Vec<String>,
    /// `scheme://host[:port]` of the public URL: a proxy in front may pass
    /// its own `Host` while browsers send this origin.
    public_origin: Option<String>,
}

impl Guard {
    /// For a server bound to `bound` (the listener's real address: port 0
    /// has been resolved) with `config`'s public URL and extra hosts.
    pub fn new(bound: SocketAddr, config: &Config) -> Guard {
        let port = bound.port();
        let mut hosts = Vec::new();
        let mut add = |host: String, port: Option<u16>, default_port: u16| match port {
            Some(p) => {
                hosts.push(format!("{host}:{p}"));
                if p == default_port {
                    hosts.push(host);
                }
            }
            None => {
                hosts.push(format!("{host}:{default_port}"));
                hosts.push(host);
            }
        };
        let ip = bound.ip();
        if ip.is_loopback() || ip.is_unspecified() {
            // Only this machine reaches these names: never a rebound one.
            for name in ["127.0.0.1", "localhost", "[::1]"] {
                add(name.to_string(), Some(port), 80);
            }
        }
        if !ip.is_loopback() && !ip.is_unspecified() {
            let name = if ip.is_ipv6() { format!("[{ip}]") } else { ip.to_string() };
            add(name, Some(port), 80);
        }
        if let Some((host, port, default_port)) = authority_of(&config.public_url) {
            add(host, port, default_port);
        }
        hosts.extend(config.allowed_hosts.iter().cloned());
        hosts.sort();
        hosts.dedup();
        let public_origin = config
            .public_url
            .split_once("://")
            .map(|(scheme, rest)| format!("{scheme}://{}", rest.split(['/', '?', '#']).next().unwrap_or("")))
            .map(|o| o.to_ascii_lowercase());
        Guard { hosts, public_origin }
    }

    /// Whether `host` (a `Host` header) is one of ours.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        self.hosts.contains(&host)
    }

    /// Every allowed `Host` value, sorted.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }
}

/// `http://Name:8080/x` → (`name`, Some(8080), 80).
fn authority_of(url: &str) -> Option<(String, Option<u16>, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?.rsplit('@').next()?.to_ascii_lowercase();
    if authority.is_empty() {
        return None;
    }
    // `[::1]:8080`, `[::1]`, `name:8080`, `name`.
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host.to_string(), Some(port.parse().ok()?)),
        _ => (authority, None),
    };
    Some((host, port, default_port))
}

/// Whether a method changes state (everything but reads).
fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The middleware: Host and cross-site checks, then the security headers on
/// whatever the answer is.
pub async fn guard(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let mut response = match check(&guard, &request) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    };
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set(headers, header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::REFERRER_POLICY, "same-origin");
    response
}

fn check(guard: &Guard, request: &Request) -> Result<(), ApiError> {
    let headers = request.headers();
    // HTTP/2 carries the host in the URI instead of a header.
    let host = match headers.get(header::HOST) {
        Some(value) => value.to_str().ok().map(str::to_string),
        None => request.uri().authority().map(|a| a.as_str().to_string()),
    };
    let Some(host) = host.filter(|h| guard.allows_host(h)) else {
        return Err(ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "unknown_host",
            "this server does not answer to that Host; use its own address (see `public-url` and `allowed-hosts`)",
        ));
    };
    if !is_write(request.method()) {
        return Ok(());
    }
    let cross_site =
        || ApiError::new(StatusCode::FORBIDDEN, "cross_site", "writes from another site's pages are refused");
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.to_str().unwrap_or(""), "same-origin" | "none") {
            return Err(cross_site());
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("").to_ascii_lowercase();
        // The page's own origin: the host it was served under (one of ours),
        // or the public URL's.
        let host = host.trim().to_ascii_lowercase();
        let own = origin == format!("http://{host}")
            || origin == format!("https://{host}")
            || guard.public_origin.as_deref() == Some(origin.as_str());
        if !own {
            return Err(cross_site());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServeArgs;

    fn config(public_url: Option<&str>, extra: &[&str]) -> Config {
        let args = ServeArgs {
            public_url: public_url.map(str::to_string),
            allowed_hosts: Some(extra.iter().map(|h| h.to_string()).collect()),
            data_dir: Some("/nonexistent".into()),
            ..ServeArgs::default()
        };
        Config::load(args).unwrap()
    }

    #[test]
    fn a_loopback_server_answers_to_its_loopback_names_and_public_url() {
        let bound: SocketAddr = "127.0.0.1:4567".parse().unwrap();
        let guard = Guard::new(bound, &config(Some("https://Builds.Example.org/"), &["ci.internal:4567"]));
        assert_eq!(
            guard.hosts(),
            [
                "127.0.0.1:4567",
                "[::1]:4567",
                "builds.example.org",
                "builds.example.org:443",
                "ci.internal:4567",
                "localhost:4567"
            ]
        );
        assert!(guard.allows_host("LOCALHOST:4567"));
        assert!(!guard.allows_host("localhost:4568"));
        assert!(!guard.allows_host("evil.example:4567"));
        assert!(!guard.allows_host("127.0.0.1"));
    }

    #[test]
    fn a_specific_address_and_default_ports() {
        let bound: SocketAddr = "10.1.2.3:80".parse().unwrap();
        let args = ServeArgs {
            bind: Some(bound),
            insecure: true,
            public_url: Some("http://[fd00::1]:8080".into()),
            data_dir: Some("/nonexistent".into()),
            ..ServeArgs::default()
        };
        let guard = Guard::new(bound, &Config::load(args).unwrap());
        assert_eq!(guard.hosts(), ["10.1.2.3", "10.1.2.3:80", "[fd00::1]:8080"]);
    }
}
