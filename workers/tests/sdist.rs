//! Every sdist names our build backend in a `pyproject.toml`, so that pip
//! and `python -m build` can build it from source.

use std::path::Path;

use wheelwright_workers::project::{Overrides, Project};
use wheelwright_workers::wheel::{sdist_pyproject, BACKEND_MODULE, BACKEND_REQUIREMENT};

fn project(files: &[(&str, &str)], overrides: Overrides) -> (tempfile::TempDir, Project) {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }
    let asm = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/pymult/src/pymult.asm"));
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/pymult.asm"), asm.unwrap()).unwrap();
    let project = Project::load(dir.path(), &overrides).unwrap();
    (dir, project)
}

#[test]
fn a_pyproject_without_a_build_system_gets_ours_and_keeps_every_line() {
    let own = "[project]\nname = \"pymult\"\nversion = \"1.2\"\n";
    let (_dir, p) = project(&[("pyproject.toml", own)], Overrides::default());
    let text = sdist_pyproject(&p).unwrap();
    assert_eq!(
        text,
        format!(
            "{own}\n[build-system]\nrequires = [\"{BACKEND_REQUIREMENT}\"]\nbuild-backend = \"{BACKEND_MODULE}\"\n"
        )
    );
    assert!(text.parse::<toml::Table>().is_ok());
}

#[test]
fn a_build_system_the_author_chose_is_kept() {
    let own = "[build-system]\nrequires = [\"other\"]\nbuild-backend = \"other.api\"\n\n[project]\nname = \"pymult\"\nversion = \"1.2\"\n";
    let (_dir, p) = project(&[("pyproject.toml", own)], Overrides::default());
    assert_eq!(sdist_pyproject(&p).unwrap(), own);
}

#[test]
fn an_upload_without_pyproject_gets_one_with_the_name_and_version_it_was_built_with() {
    let overrides = Overrides { name: Some("my-mult".into()), version: Some("0.3".into()), debug: false };
    let (_dir, p) = project(&[], overrides);
    let text = sdist_pyproject(&p).unwrap();
    let table: toml::Table = text.parse().unwrap();
    assert_eq!(table["project"]["name"].as_str(), Some("my-mult"));
    assert_eq!(table["project"]["version"].as_str(), Some("0.3"));
    assert_eq!(table["build-system"]["build-backend"].as_str(), Some(BACKEND_MODULE));
    assert_eq!(table["build-system"]["requires"][0].as_str(), Some(BACKEND_REQUIREMENT));
}
