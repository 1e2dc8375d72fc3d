//! `wheelwright submit` and the GitHub Action's build step, end to end
//! against a real daemon.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

async fn run(command: Command) -> Output {
    let mut command = command;
    tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A copy of examples/pymult with a .gitignore and an ignored file.
fn project_with_ignored_files() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for rel in files_of(&example("pymult")) {
        let dest = dir.path().join(&rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(example("pymult").join(&rel), dest).unwrap();
    }
    std::fs::write(dir.path().join(".gitignore"), "build/\n*.secret\n").unwrap();
    std::fs::create_dir_all(dir.path().join("build")).unwrap();
    std::fs::write(dir.path().join("build/junk.asm"), "this would not assemble\n").unwrap();
    std::fs::write(dir.path().join("api.secret"), "hunter2\n").unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_waits_downloads_and_checks_every_artifact() {
    let app = TestApp::spawn_with(|a| a.tokens = Some(vec!["cli-token".into()])).await;
    let project = project_with_ignored_files();
    let dist = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_wheelwright"));
    command
        .args(["submit", "--server", &app.base, "--target", "linux-x86_64,windows-x86_64", "--wait", "--json"])
        .arg("--download")
        .arg(dist.path())
        .arg(project.path())
        .env("WHEELWRIGHT_TOKEN", "cli-token");
    let out = run(command).await;
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("linux-x86_64    smoke succeeded"), "{stderr}");
    assert!(stderr.contains("build succeeded"), "{stderr}");
    let build: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(build["status"], "succeeded");
    let mut saved: Vec<String> = std::fs::read_dir(dist.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    saved.sort();
    assert_eq!(
        saved,
        [
            "pymult-1.0.0-cp38-abi3-manylinux_2_5_x86_64.manylinux1_x86_64.whl",
            "pymult-1.0.0-cp38-abi3-win_amd64.whl",
            "pymult-1.0.0.tar.gz"
        ]
    );
    for artifact in build["artifacts"].as_array().unwrap() {
        let bytes = std::fs::read(dist.path().join(artifact["filename"].as_str().unwrap())).unwrap();
        assert_eq!(sha256(&bytes), artifact["sha256"].as_str().unwrap());
    }
    // .gitignore was respected: the ignored files never reached the server.
    let sdist = dist.path().join("pymult-1.0.0.tar.gz");
    let listing = Command::new("tar").arg("-tzf").arg(&sdist).output().unwrap();
    let listing = text(&listing.stdout);
    assert!(!listing.contains("junk.asm") && !listing.contains("api.secret"), "{listing}");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_exits_non_zero_when_the_build_fails_or_is_refused() {
    let app = TestApp::spawn_with(|a| a.tokens = Some(vec!["cli-token".into()])).await;
    let broken = project(&[("src/broken.asm", "mov rax,\n")]);
    let mut command = Command::new(env!("CARGO_BIN_EXE_wheelwright"));
    command.args(["submit", "--server", &app.base, "--target", "linux-x86_64", "--wait", "--token", "cli-token"]);
    command.arg(broken.path());
    let out = run(command).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("linux-x86_64    assemble failed"), "{stderr}");
    assert!(stderr.contains("src/broken.asm:1: error:"), "{stderr}");
    assert!(stderr.trim_end().ends_with("failed"), "{stderr}");

    let mut command = Command::new(env!("CARGO_BIN_EXE_wheelwright"));
    command.args(["submit", "--server", &app.base, "--token", "wrong"]).arg(example("pymult"));
    let out = run(command).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim(),
        "error: the server refused the build (401 Unauthorized): the token is not valid"
    );
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actions_build_step_runs_with_the_environment_actions_sets() {
    let app = TestApp::spawn_with(|a| a.tokens = Some(vec!["action-token".into()])).await;
    let workspace = project_with_ignored_files();
    let output = tempfile::NamedTempFile::new().unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_wheelwright")).parent().unwrap().to_path_buf();
    let mut command = Command::new("bash");
    command
        .arg(repo().join("scripts/action.sh"))
        .current_dir(workspace.path())
        .env("PATH", format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()))
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_WORKSPACE", workspace.path())
        .env("GITHUB_OUTPUT", output.path())
        .env("GITHUB_ACTION_PATH", repo())
        .env("INPUT_SERVER", &app.base)
        .env("INPUT_PATH", ".")
        .env("INPUT_TARGETS", "linux-x86_64")
        .env("WHEELWRIGHT_TOKEN", "action-token");
    let out = run(command).await;
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let outputs = std::fs::read_to_string(output.path()).unwrap();
    let dist = workspace.path().join("dist");
    let wheel = dist.join("pymult-1.0.0-cp38-abi3-manylinux_2_5_x86_64.manylinux1_x86_64.whl");
    assert!(outputs.contains(&format!("dist={}\n", dist.display())), "{outputs}");
    assert!(outputs.contains(&format!("wheels<<WHEELWRIGHT_EOF\n{}\nWHEELWRIGHT_EOF\n", wheel.display())), "{outputs}");
    assert!(outputs.contains(&format!("sdist={}\n", dist.join("pymult-1.0.0.tar.gz").display())), "{outputs}");
    let id = outputs.lines().find_map(|l| l.strip_prefix("build-id=")).unwrap();
    let build = app.get_json(&format!("/api/v1/builds/{id}")).await;
    let listed = build["artifacts"][0]["sha256"].as_str().unwrap().to_string();
    assert_eq!(sha256(&std::fs::read(&wheel).unwrap()), listed);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actions_build_step_annotates_each_finding_on_its_line() {
    let app = TestApp::spawn().await;
    let workspace = tempfile::tempdir().unwrap();
    let fixture = repo().join("workers/tests/fixtures/abibad");
    let project = workspace.path().join("ext");
    for rel in ["src/abibad.asm", "pyproject.toml"] {
        let dest = project.join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        // Its static check on: the build fails at it, with findings.
        let text = std::fs::read_to_string(fixture.join(rel)).unwrap().replace("lint = \"off\"", "");
        std::fs::write(dest, text).unwrap();
    }
    let output = tempfile::NamedTempFile::new().unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_wheelwright")).parent().unwrap().to_path_buf();
    let mut command = Command::new("bash");
    command
        .arg(repo().join("scripts/action.sh"))
        .current_dir(workspace.path())
        .env("PATH", format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()))
        .env("GITHUB_WORKSPACE", workspace.path())
        .env("GITHUB_OUTPUT", output.path())
        .env("INPUT_SERVER", &app.base)
        .env("INPUT_PATH", "ext")
        .env("INPUT_TARGETS", "linux-x86_64");
    let out = run(command).await;
    assert_eq!(out.status.code(), Some(1), "the failed build fails the step");
    let stdout = text(&out.stdout);
    let annotation = stdout.lines().find(|l| {
        l.starts_with("::error file=ext/src/abibad.asm,line=") && l.contains("title=wheelwright misaligned-call::")
    });
    assert!(annotation.is_some_and(|a| a.contains(",col=5,") && a.contains("PyFloat_FromDouble")), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.contains("title=wheelwright callee-saved-not-restored::rbx is callee-saved")),
        "{stdout}"
    );
    app.stop().await.unwrap();
}
