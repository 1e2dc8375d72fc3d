//! docker/cluster.yaml read as the tests need it: its services, the daemons'
//! environment, and that environment turned into the one a daemon on this
//! machine gets (the local PostgreSQL and S3 servers' addresses in place of
//! the compose services'), so that the multi-daemon tests run the
//! deployment's settings and tests/docker.rs can check them.

use std::collections::BTreeMap;

use serde_yaml::Value;

/// The compose file, parsed, with its `<<: *anchor` merge keys applied (as
/// `docker compose` does).
pub struct Compose {
    /// The whole document.
    pub doc: Value,
}

impl Compose {
    /// docker/cluster.yaml.
    pub fn load() -> Compose {
        let text = std::fs::read_to_string(super::repo().join("docker/cluster.yaml")).unwrap();
        let mut doc: Value = serde_yaml::from_str(&text).expect("docker/cluster.yaml is YAML");
        doc.apply_merge().expect("its merge keys apply");
        for service in doc["services"].as_mapping_mut().expect("a services mapping").values_mut() {
            service.apply_merge().expect("its merge keys apply");
        }
        Compose { doc }
    }

    /// Every service's name.
    pub fn services(&self) -> Vec<String> {
        self.doc["services"].as_mapping().unwrap().keys().map(|k| k.as_str().unwrap().to_string()).collect()
    }

    /// One service's definition.
    pub fn service(&self, name: &str) -> &Value {
        let service = &self.doc["services"][name];
        assert!(service.is_mapping(), "no service {name} in docker/cluster.yaml");
        service
    }

    /// The services built from docker/Dockerfile: the daemons.
    pub fn daemons(&self) -> Vec<String> {
        self.services()
            .into_iter()
            .filter(|s| self.service(s)["build"]["dockerfile"].as_str() == Some("docker/Dockerfile"))
            .collect()
    }

    /// The one service running `image` (its name before the `:tag`).
    pub fn service_of_image(&self, image: &str) -> String {
        let matching: Vec<String> = self
            .services()
            .into_iter()
            .filter(|s| self.service(s)["image"].as_str().and_then(|i| i.split(':').next()) == Some(image))
            .collect();
        assert_eq!(matching.len(), 1, "one {image} service in docker/cluster.yaml: {matching:?}");
        matching.into_iter().next().unwrap()
    }

    /// A service's `environment` mapping, values as written (with their
    /// `${…}` interpolations).
    pub fn environment(&self, service: &str) -> BTreeMap<String, String> {
        let env = self.service(service)["environment"].as_mapping().unwrap_or_else(|| {
            panic!("{service}'s environment is a mapping in docker/cluster.yaml");
        });
        env.iter()
            .map(|(k, v)| {
                let value = match v {
                    Value::String(s) => s.clone(),
                    other => panic!("{service}: {k:?} = {other:?}: quote it, compose wants strings"),
                };
                (k.as_str().unwrap().to_string(), value)
            })
            .collect()
    }

    /// The daemons' environment (they all have the same; this checks it).
    pub fn daemon_environment(&self) -> BTreeMap<String, String> {
        let daemons = self.daemons();
        assert!(daemons.len() >= 2, "several daemons: {daemons:?}");
        let env = self.environment(&daemons[0]);
        for other in &daemons[1..] {
            assert_eq!(self.environment(other), env, "{other} has {}'s environment", daemons[0]);
        }
        env
    }
}

/// `value` with every `${NAME…}` interpolation replaced by `with(NAME)`.
pub fn interpolate(value: &str, with: impl Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').map(|e| start + e).expect("a closed ${…}");
        let name = rest[start + 2..end].split([':', '-', '?']).next().unwrap();
        out.push_str(&with(name));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// What a daemon on this machine needs in place of the deployment's own
/// addresses and secrets.
pub struct Local<'a> {
    /// The PostgreSQL database.
    pub database_url: &'a str,
    /// The S3 store (`s3://bucket/prefix`), or none for the local store.
    pub store: Option<&'a str>,
    /// The shared write token.
    pub token: &'a str,
    /// The shared GitHub webhook secret.
    pub github_secret: &'a str,
}

/// The daemons' environment of docker/cluster.yaml for a daemon on this
/// machine: each variable to set (`Some`) or to leave unset (`None`). A
/// variable that names a compose service or takes a value from the
/// operator (`${…}`) must be one this knows how to replace: a new one fails
/// here until the tests learn it, so that they never run settings the
/// deployment does not have, or miss one it has.
pub fn local_daemon_environment(compose: &Compose, local: &Local) -> BTreeMap<String, Option<String>> {
    let services = compose.services();
    compose
        .daemon_environment()
        .into_iter()
        .map(|(name, value)| {
            let replaced = match name.as_str() {
                // Any free loopback port; the daemon says which.
                "WHEELWRIGHT_BIND" => Some("127.0.0.1:0".to_string()),
                // Derived from the bound address, as without a proxy.
                "WHEELWRIGHT_PUBLIC_URL" => None,
                "WHEELWRIGHT_TOKENS" => Some(local.token.to_string()),
                "WHEELWRIGHT_GITHUB_SECRET" => Some(local.github_secret.to_string()),
                "WHEELWRIGHT_DATABASE_URL" => Some(local.database_url.to_string()),
                "WHEELWRIGHT_STORE" => local.store.map(str::to_string),
                // The suite's S3 server (scripts/test.sh exports these).
                "AWS_ENDPOINT_URL" | "AWS_REGION" | "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" => {
                    local.store.map(|_| std::env::var(&name).unwrap_or_else(|_| panic!("{name} for the S3 store")))
                }
                _ => {
                    let names_a_service = services.iter().any(|s| value.contains(&format!("{s}:")));
                    assert!(
                        !value.contains("${") && !names_a_service,
                        "{name}={value} in docker/cluster.yaml: teach tests/common/compose.rs its local value"
                    );
                    Some(value)
                }
            };
            (name, replaced)
        })
        .collect()
}
