//! No Docker engine runs here, so the image is checked by reading it: its
//! packages must be exactly the service packages the setup script installs.

use std::collections::BTreeSet;

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
