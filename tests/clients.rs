//! The publishing clients people use, as they are, against what the
//! service makes: PyPI's `build` front end building an example through our
//! backend fetched from the daemon's index (isolated, offline), and `twine
//! upload` of a build's files to a real `pypiserver`, installed back with pip.

mod common;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{example, repo, venv_python, TestApp};

fn fresh_venv() -> (tempfile::TempDir, PathBuf) {
    let venv = tempfile::tempdir().unwrap();
    let made = Command::new("python3").args(["-m", "venv", "--without-pip"]).arg(venv.path()).status();
    assert!(made.unwrap().success());
    let python = venv.path().join("bin/python");
    (venv, python)
}

/// Output of a finished command, both streams; panics with it on failure.
fn succeeded(what: &str, output: std::process::Output) -> String {
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{what} failed: {said}");
    said
}

/// `pip install` into the fresh venv `python` with `args`, then a call of
/// the module, which must answer 42.
fn install_and_call(python: &Path, args: &[&str]) -> String {
    let pip = Command::new(venv_python())
        .args(["-m", "pip", "--disable-pip-version-check", "--no-cache-dir", "--python"])
        .arg(python)
        .arg("install")
        .args(args)
        .output()
        .unwrap();
    let said = succeeded("pip install", pip);
    let out = Command::new(python).args(["-c", "import pymult; print(pymult.multiply(6, 7))"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42", "{}", String::from_utf8_lossy(&out.stderr));
    said
}

/// Copies the project `from` (no hidden files) into `to`.
fn copy_project(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') || name == "__pycache__" {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_project(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_m_build_builds_an_example_through_the_backend_from_the_daemons_index() {
    let app = TestApp::spawn().await;
    let project = tempfile::tempdir().unwrap();
    copy_project(&example("pymult"), project.path());
    let out = tempfile::tempdir().unwrap();
    // Isolated: `build` makes a fresh environment and installs the
    // `[build-system]` requirement into it — from the daemon's index only.
    let index = app.url("/simple/");
    let project_dir = project.path().to_path_buf();
    let out_dir = out.path().to_path_buf();
    let built = tokio::task::spawn_blocking(move || {
        Command::new(venv_python())
            .args(["-m", "build", "--outdir"])
            .arg(&out_dir)
            .arg(&project_dir)
            .env("PIP_INDEX_URL", &index)
            .env("PIP_NO_CACHE_DIR", "1")
            .env("PIP_CONFIG_FILE", "/dev/null")
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let said = succeeded("python -m build", built);
    assert!(said.contains("wheelwright-backend") || said.contains("wheelwright_backend"), "{said}");
    let mut files: Vec<String> =
        std::fs::read_dir(out.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    files.sort();
    assert_eq!(
        files,
        ["pymult-1.0.0-cp38-abi3-manylinux_2_5_x86_64.manylinux1_x86_64.whl", "pymult-1.0.0.tar.gz"],
        "{said}"
    );
    // The wheel built from the sdist is a working one.
    let (_venv, python) = fresh_venv();
    let wheel = out.path().join(&files[0]);
    install_and_call(&python, &["--no-index", wheel.to_str().unwrap()]);
    app.stop().await.unwrap();
}

/// A real pypiserver (no authentication) serving `root` on 127.0.0.1, on
/// the port its own socket got: the server prints it, so nothing binds,
/// drops and rebinds.
struct PyPiServer {
    child: std::process::Child,
    url: String,
}

impl PyPiServer {
    fn start(root: &Path) -> PyPiServer {
        let script = r#"
import socketserver, sys
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
import pypiserver

class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass

class Threaded(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True

app = pypiserver.app(roots=[sys.argv[1]], authenticate=[], password_file=".")
server = make_server("127.0.0.1", 0, app, server_class=Threaded, handler_class=Quiet)
print(server.server_port, flush=True)
server.serve_forever()
"#;
        let mut child = Command::new(venv_python())
            .args(["-c", script])
            .arg(root)
            .stdout(Stdio::piped())
            .spawn()
            .expect("pypiserver starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port: u16 = line.trim().parse().unwrap_or_else(|_| panic!("pypiserver printed {line:?}"));
        PyPiServer { child, url: format!("http://127.0.0.1:{port}") }
    }
}

impl Drop for PyPiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twine_uploads_a_builds_files_to_pypiserver_and_pip_installs_them_back() {
    let app = TestApp::spawn().await;
    let build = app.submit(&example("pymult"), &[("targets", "linux-x86_64")]).await;
    let build = app.wait(build["id"].as_str().unwrap()).await;
    assert_eq!(build["status"], "succeeded", "{build}");
    let downloads = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for artifact in build["artifacts"].as_array().unwrap() {
        let bytes = app.client.get(app.url(artifact["url"].as_str().unwrap())).send().await.unwrap();
        let bytes = bytes.error_for_status().unwrap().bytes().await.unwrap();
        assert_eq!(common::sha256(&bytes), artifact["sha256"].as_str().unwrap());
        let path = downloads.path().join(artifact["filename"].as_str().unwrap());
        std::fs::write(&path, &bytes).unwrap();
        files.push(path);
    }
    assert_eq!(files.len(), 2, "the Linux wheel and the sdist: {files:?}");

    let packages = tempfile::tempdir().unwrap();
    let server = PyPiServer::start(packages.path());
    let url = server.url.clone();
    let upload = files.clone();
    let twine = tokio::task::spawn_blocking(move || {
        Command::new(repo().join(".venv/bin/twine"))
            .args(["upload", "--non-interactive", "--disable-progress-bar", "--repository-url"])
            .arg(format!("{url}/"))
            .args(["-u", "wheelwright", "-p", "unused"])
            .args(&upload)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    succeeded("twine upload", twine);
    let mut stored: Vec<String> = std::fs::read_dir(packages.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    stored.sort();
    let mut expected: Vec<String> =
        files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
    expected.sort();
    assert_eq!(stored, expected, "pypiserver stored what twine sent");
    for file in &files {
        assert_eq!(
            std::fs::read(file).unwrap(),
            std::fs::read(packages.path().join(file.file_name().unwrap())).unwrap()
        );
    }

    let (_venv, python) = fresh_venv();
    let index = format!("{}/simple/", server.url);
    let said = tokio::task::spawn_blocking(move || install_and_call(&python, &["--index-url", &index, "pymult"]))
        .await
        .unwrap();
    assert!(said.contains("manylinux"), "pip took the wheel: {said}");
    drop(server);
    app.stop().await.unwrap();
}
