//! No Docker engine runs here, so the image and the deployments are checked
//! by reading them: the image's packages must be exactly the service packages
//! the setup script installs, and docker/cluster.yaml (several daemons,
//! PostgreSQL, SeaweedFS, nginx) must agree with the daemon's flags, with
//! itself and with docker/nginx.conf. tests/multi_daemon.rs runs its
//! subprocess daemons with that file's environment.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::compose::{interpolate, local_daemon_environment, Compose, Local};

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The packages of `service_packages` in scripts/setup.sh.
fn setup_packages() -> BTreeSet<String> {
    let script = repo_file("scripts/setup.sh");
    let start = script.find("service_packages() {").expect("service_packages in setup.sh");
    let body = &script[start..];
    let list = &body[body.find("<<'LIST'\n").unwrap() + 9..body.find("\nLIST").unwrap()];
    list.lines().filter_map(|l| l.split_whitespace().nth(1)).map(str::to_string).collect()
}

/// The packages the runtime stage of docker/Dockerfile installs.
fn image_packages() -> BTreeSet<String> {
    let dockerfile = repo_file("docker/Dockerfile");
    let runtime = &dockerfile[dockerfile.find("FROM debian").expect("a runtime stage")..];
    let install = &runtime[runtime.find("apt-get install").unwrap()..];
    let install = &install[..install.find("&&").unwrap()];
    install
        .split_whitespace()
        .filter(|w| !w.starts_with('-') && *w != "\\" && *w != "apt-get" && *w != "install")
        .map(str::to_string)
        .collect()
}

#[test]
fn the_image_installs_exactly_the_setup_scripts_service_packages() {
    let setup = setup_packages();
    assert!(setup.contains("nasm") && setup.contains("bubblewrap") && setup.len() >= 8, "{setup:?}");
    assert_eq!(image_packages(), setup);
}

#[test]
fn the_image_runs_the_service_as_a_non_root_user_with_a_health_check() {
    let dockerfile = repo_file("docker/Dockerfile");
    let runtime = &dockerfile[dockerfile.find("FROM debian").unwrap()..];
    assert!(runtime.contains("\nUSER wheelwright\n"));
    assert!(runtime.contains("HEALTHCHECK") && runtime.contains("/healthz"));
    assert!(runtime.contains("VOLUME [\"/var/lib/wheelwright/data\"]"));
    assert!(runtime.trim_end().ends_with("CMD [\"wheelwright\", \"serve\"]"));
    let compose = repo_file("docker/compose.yaml");
    assert!(compose.contains("dockerfile: docker/Dockerfile") && compose.contains("WHEELWRIGHT_TOKENS"));
}

/// The variables `wheelwright serve` reads: the `[env: NAME=]` of its help.
fn serve_variables() -> BTreeSet<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wheelwright")).args(["serve", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    help.split("[env: ").skip(1).map(|rest| rest[..rest.find('=').unwrap()].to_string()).collect()
}

/// `http://host:port/…` → (host, port).
fn host_and_port(url: &str) -> (String, u16) {
    let url = reqwest::Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    (url.host_str().unwrap().to_string(), url.port_or_known_default().unwrap())
}

/// A daemon variable's value with every operator-supplied `${…}` filled in.
fn resolved(env: &BTreeMap<String, String>, name: &str) -> String {
    interpolate(env.get(name).unwrap_or_else(|| panic!("the daemons set {name}")), |var| var.to_string())
}

#[test]
fn every_daemon_variable_of_the_cluster_is_a_serve_flag_or_an_aws_setting() {
    let compose = Compose::load();
    assert_eq!(compose.daemons(), ["wheelwright-1", "wheelwright-2"]);
    let env = compose.daemon_environment();
    let flags = serve_variables();
    assert!(flags.contains("WHEELWRIGHT_DATABASE_URL") && flags.contains("WHEELWRIGHT_STORE"), "{flags:?}");
    let aws = ["AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"];
    for name in env.keys() {
        assert!(flags.contains(name) || aws.contains(&name.as_str()), "{name} is no `serve` setting: {flags:?}");
    }
    for name in aws.iter().chain(&["WHEELWRIGHT_DATABASE_URL", "WHEELWRIGHT_STORE", "WHEELWRIGHT_TOKENS"]) {
        assert!(env.contains_key(*name), "the daemons get {name}");
    }
    // Shared secrets come from the operator, never from the file.
    for name in ["WHEELWRIGHT_TOKENS", "WHEELWRIGHT_GITHUB_SECRET", "AWS_SECRET_ACCESS_KEY"] {
        assert!(env[name].starts_with("${") && env[name].ends_with('}'), "{name}={}", env[name]);
    }
    // Each daemon keeps its cache in a volume of its own.
    let volumes: BTreeSet<String> = compose
        .daemons()
        .iter()
        .map(|d| compose.service(d)["volumes"][0].as_str().unwrap().split(':').next().unwrap().to_string())
        .collect();
    assert_eq!(volumes.len(), compose.daemons().len(), "{volumes:?}");
}

#[test]
fn the_tests_run_the_clusters_daemon_environment_with_the_local_servers() {
    let compose = Compose::load();
    let local = Local {
        database_url: "postgres://postgres@127.0.0.1:5999/test",
        store: None,
        token: "t0k3n",
        github_secret: "s3cr3t",
    };
    // Without S3 the store and the AWS_* variables are left out; every other
    // variable is set, to the local value or to the compose file's own.
    let env = local_daemon_environment(&compose, &local);
    assert_eq!(env.len(), compose.daemon_environment().len());
    assert_eq!(env["WHEELWRIGHT_DATABASE_URL"].as_deref(), Some(local.database_url));
    assert_eq!(env["WHEELWRIGHT_TOKENS"].as_deref(), Some("t0k3n"));
    assert_eq!(env["WHEELWRIGHT_BIND"].as_deref(), Some("127.0.0.1:0"));
    assert_eq!(env["WHEELWRIGHT_STORE"], None);
    assert_eq!(env["AWS_ENDPOINT_URL"], None);
    assert_eq!(env["WHEELWRIGHT_MAX_UPLOAD"].as_deref(), Some("33554432"));
    assert_eq!(env["WHEELWRIGHT_STORE_DOWNLOADS"].as_deref(), Some("proxy"));
}

#[test]
fn the_clusters_database_and_store_urls_name_its_postgres_and_seaweedfs_services() {
    let compose = Compose::load();
    let env = compose.daemon_environment();

    let postgres = compose.service_of_image("postgres");
    let pg_env = compose.environment(&postgres);
    let db = reqwest::Url::parse(&resolved(&env, "WHEELWRIGHT_DATABASE_URL")).unwrap();
    assert_eq!(db.scheme(), "postgres");
    assert_eq!((db.host_str().unwrap(), db.port()), (postgres.as_str(), Some(5432)));
    assert_eq!(db.username(), pg_env["POSTGRES_USER"]);
    assert_eq!(db.path(), format!("/{}", pg_env["POSTGRES_DB"]));
    // The password is the one variable the server is started with.
    assert_eq!(db.password(), Some(interpolate(&pg_env["POSTGRES_PASSWORD"], |v| v.to_string()).as_str()));

    let seaweedfs = compose.service_of_image("chrislusf/seaweedfs");
    assert_eq!(host_and_port(&env["AWS_ENDPOINT_URL"]), (seaweedfs.clone(), 8333));
    let command = compose.service(&seaweedfs)["command"].as_str().unwrap().to_string();
    let bucket = env["WHEELWRIGHT_STORE"].strip_prefix("s3://").unwrap().split('/').next().unwrap();
    assert!(command.split_whitespace().any(|w| w == format!("-bucket={bucket}")), "{command}");
    assert!(command.starts_with("mini ") && command.contains("-s3.config=/etc/seaweedfs/s3.json"), "{command}");
    // The S3 identity the server knows is the daemons' key and secret.
    let identities = compose.doc["configs"]["s3-identities"]["content"].as_str().unwrap();
    let identities: serde_json::Value = serde_json::from_str(&interpolate(identities, |v| v.to_string())).unwrap();
    let credentials = &identities["identities"][0]["credentials"][0];
    assert_eq!(credentials["accessKey"], resolved(&env, "AWS_ACCESS_KEY_ID"));
    assert_eq!(credentials["secretKey"], resolved(&env, "AWS_SECRET_ACCESS_KEY"));
    let mounts = compose.service(&seaweedfs)["configs"][0].clone();
    assert_eq!(mounts["source"], "s3-identities");
    assert_eq!(mounts["target"], "/etc/seaweedfs/s3.json");
}

/// docker/nginx.conf's directives (`name args;`), comments dropped.
fn nginx_directives() -> Vec<(String, String)> {
    let conf = repo_file("docker/nginx.conf");
    let text: String = conf.lines().map(|l| l.split('#').next().unwrap()).collect::<Vec<_>>().join("\n");
    text.split([';', '{', '}'])
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| match d.split_once(char::is_whitespace) {
            Some((name, args)) => (name.to_string(), args.trim().to_string()),
            None => (d.to_string(), String::new()),
        })
        .collect()
}

fn nginx(directive: &str) -> Vec<String> {
    nginx_directives().into_iter().filter(|(n, _)| n == directive).map(|(_, a)| a).collect()
}

#[test]
fn nginx_balances_every_daemon_and_streams_live_logs_and_uploads() {
    let compose = Compose::load();
    let env = compose.daemon_environment();
    let port = env["WHEELWRIGHT_BIND"].rsplit(':').next().unwrap().to_string();
    let upstream: BTreeSet<String> =
        nginx("server").iter().filter_map(|s| s.split_whitespace().next().map(str::to_string)).collect();
    let daemons: BTreeSet<String> = compose.daemons().iter().map(|d| format!("{d}:{port}")).collect();
    assert_eq!(upstream, daemons);
    assert_eq!(nginx("upstream"), ["wheelwright"]);
    assert_eq!(nginx("proxy_pass"), ["http://wheelwright"]);
    // Server-sent events: no buffering, and a read timeout longer than a build.
    assert_eq!(nginx("proxy_buffering"), ["off"]);
    let timeout = &nginx("proxy_read_timeout")[0];
    assert!(timeout.ends_with('h') || timeout.trim_end_matches('m').parse::<u32>().unwrap() >= 10, "{timeout}");
    // The body limit is the daemon's: its max upload plus 64 KiB of framing.
    let max_upload: u64 = env["WHEELWRIGHT_MAX_UPLOAD"].parse().unwrap();
    let body = nginx("client_max_body_size")[0].clone();
    let body: u64 = body.strip_suffix('k').expect("client_max_body_size in k").parse::<u64>().unwrap() * 1024;
    assert_eq!(body, max_upload + 64 * 1024);
    assert_eq!(nginx("proxy_set_header").iter().find(|h| h.starts_with("Host ")).unwrap(), "Host $http_host");
    // The file mounted is this one, and nginx waits for every daemon.
    let balancer = compose.service_of_image("nginx");
    let service = compose.service(&balancer);
    assert_eq!(service["volumes"][0], "./nginx.conf:/etc/nginx/nginx.conf:ro");
    for daemon in compose.daemons() {
        assert_eq!(service["depends_on"][&daemon]["condition"], "service_healthy", "{daemon}");
    }
}

#[test]
fn every_cluster_service_but_the_balancer_has_a_health_check_the_others_wait_for() {
    let compose = Compose::load();
    let balancer = compose.service_of_image("nginx");
    for name in compose.services() {
        let service = compose.service(&name);
        if name != balancer {
            let test = serde_yaml::to_string(&service["healthcheck"]["test"]).unwrap();
            assert!(test.contains("CMD"), "{name} has a health check: {test}");
        }
    }
    for daemon in compose.daemons() {
        let test = serde_yaml::to_string(&compose.service(&daemon)["healthcheck"]["test"]).unwrap();
        assert!(test.contains("http://127.0.0.1:8080/healthz"), "{test}");
        let depends = &compose.service(&daemon)["depends_on"];
        for server in [compose.service_of_image("postgres"), compose.service_of_image("chrislusf/seaweedfs")] {
            assert_eq!(depends[&server]["condition"], "service_healthy", "{daemon} waits for {server}");
        }
        // bubblewrap needs namespaces inside the container.
        assert_eq!(compose.service(&daemon)["security_opt"][0], "seccomp=unconfined");
    }
}
