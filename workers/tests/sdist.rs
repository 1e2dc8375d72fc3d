//! Every sdist names our build backend in a `pyproject.toml`, so that pip
//! and `python -m build` can build it from source.

mod common;

use std::path::Path;

use std::io::Read;

use wheelwright_workers::platform::Target;
use wheelwright_workers::project::{Overrides, Project, ProjectError};
use wheelwright_workers::wheel::{
    sdist_pyproject, write_sdist, write_wheel, WheelInput, BACKEND_MODULE, BACKEND_REQUIREMENT,
};

fn project(files: &[(&str, &str)], overrides: Overrides) -> (tempfile::TempDir, Project) {
    let (dir, loaded) = try_project(files, overrides);
    (dir, loaded.unwrap())
}

fn try_project(files: &[(&str, &str)], overrides: Overrides) -> (tempfile::TempDir, Result<Project, ProjectError>) {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }
    let asm = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/pymult/src/pymult.asm"));
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/pymult.asm"), asm.unwrap()).unwrap();
    let project = Project::load(dir.path(), &overrides);
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

/// The wheel's `METADATA`, the sdist's `PKG-INFO` and the names of the
/// wheel's and the sdist's entries.
fn built(p: &Project) -> (String, String, Vec<String>, Vec<String>) {
    let out = tempfile::tempdir().unwrap();
    let input =
        WheelInput { project: p, target: Target::Linux, python: None, modules: Vec::new(), glibc: None, epoch: 0 };
    let wheel = write_wheel(&input, out.path()).unwrap();
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&wheel.path).unwrap()).unwrap();
    let wheel_names: Vec<String> =
        (0..zip.len()).map(|i| zip.by_index(i).unwrap().name().unwrap().to_string()).collect();
    let metadata_name = wheel_names.iter().find(|n| n.ends_with(".dist-info/METADATA")).unwrap().clone();
    let mut metadata = String::new();
    zip.by_name(&metadata_name).unwrap().read_to_string(&mut metadata).unwrap();
    let sdist = write_sdist(p, out.path(), 0).unwrap();
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(&sdist.path).unwrap());
    let mut tar = tar::Archive::new(gz);
    let mut pkg_info = String::new();
    let mut sdist_names = Vec::new();
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        if name.ends_with("/PKG-INFO") {
            entry.read_to_string(&mut pkg_info).unwrap();
        }
        sdist_names.push(name);
    }
    (metadata, pkg_info, wheel_names, sdist_names)
}

#[test]
fn an_spdx_license_makes_metadata_2_4_with_its_expression_and_files() {
    let pyproject = "[project]\nname = \"pymult\"\nversion = \"1.0\"\nlicense = \"mit or Apache-2.0\"\n";
    let (_dir, p) = project(
        &[("pyproject.toml", pyproject), ("LICENSE", "MIT text\n"), ("NOTICE.txt", "notice\n"), ("README.md", "x")],
        Overrides::default(),
    );
    let (metadata, pkg_info, wheel_names, sdist_names) = built(&p);
    assert_eq!(metadata, pkg_info, "METADATA and PKG-INFO differ");
    assert!(metadata.starts_with("Metadata-Version: 2.4\n"), "{metadata}");
    assert!(metadata.contains("\nLicense-Expression: mit OR Apache-2.0\n"), "{metadata}");
    assert!(metadata.contains("\nLicense-File: LICENSE\nLicense-File: NOTICE.txt\n"), "{metadata}");
    assert!(!metadata.contains("\nLicense: "), "{metadata}");
    for file in ["LICENSE", "NOTICE.txt"] {
        assert!(wheel_names.contains(&format!("pymult-1.0.dist-info/licenses/{file}")), "{wheel_names:?}");
        assert!(sdist_names.contains(&format!("pymult-1.0/{file}")), "{sdist_names:?}");
    }
}

#[test]
fn license_files_globs_pick_the_files_and_one_matching_nothing_is_refused() {
    let pyproject = "[project]\nname = \"pymult\"\nversion = \"1.0\"\nlicense = \"MIT\"\n\
                     license-files = [\"licenses/*.txt\"]\n";
    let files = [("pyproject.toml", pyproject), ("licenses/MIT.txt", "m"), ("licenses/x.md", "x"), ("LICENSE", "l")];
    let (_dir, p) = project(&files, Overrides::default());
    let (metadata, _, wheel_names, _) = built(&p);
    assert!(metadata.contains("\nLicense-File: licenses/MIT.txt\n") && !metadata.contains("License-File: LICENSE"));
    assert!(wheel_names.contains(&"pymult-1.0.dist-info/licenses/licenses/MIT.txt".to_string()));

    let nothing = pyproject.replace("licenses/*.txt", "COPYING*");
    let (_dir, err) = try_project(&[("pyproject.toml", &nothing)], Overrides::default());
    assert_eq!(
        err.unwrap_err(),
        ProjectError::InvalidKey { key: "project.license-files".into(), message: "`COPYING*` matches no file".into() }
    );
    let escape = pyproject.replace("licenses/*.txt", "../*");
    let (_dir, err) = try_project(&[("pyproject.toml", &escape)], Overrides::default());
    assert!(matches!(err.unwrap_err(), ProjectError::InvalidKey { key, .. } if key == "project.license-files"));
}

#[test]
fn a_license_that_is_not_an_spdx_expression_is_refused_naming_the_field() {
    let pyproject = "[project]\nname = \"pymult\"\nversion = \"1.0\"\nlicense = \"MIT License\"\n";
    let (_dir, err) = try_project(&[("pyproject.toml", pyproject)], Overrides::default());
    let err = err.unwrap_err();
    assert!(matches!(&err, ProjectError::InvalidKey { key, .. } if key == "project.license"), "{err}");
    assert!(err.to_string().contains("`License` where AND, OR or WITH was expected"), "{err}");

    let classifier = "[project]\nname = \"pymult\"\nversion = \"1.0\"\nlicense = \"MIT\"\n\
                      classifiers = [\"License :: OSI Approved :: MIT License\"]\n";
    let (_dir, err) = try_project(&[("pyproject.toml", classifier)], Overrides::default());
    assert!(matches!(err.unwrap_err(), ProjectError::InvalidKey { key, .. } if key == "project.classifiers"));
}

#[test]
fn the_table_form_of_license_stays_metadata_2_1() {
    let pyproject = "[project]\nname = \"pymult\"\nversion = \"1.0\"\nlicense = { file = \"COPYING\" }\n";
    let (_dir, p) = project(&[("pyproject.toml", pyproject), ("COPYING", "All rights given.\n")], Overrides::default());
    let (metadata, pkg_info, wheel_names, _) = built(&p);
    assert_eq!(metadata, pkg_info);
    assert!(metadata.starts_with("Metadata-Version: 2.1\n") && metadata.contains("\nLicense: All rights given.\n"));
    assert!(!metadata.contains("License-File") && !metadata.contains("License-Expression"));
    assert!(wheel_names.contains(&"pymult-1.0.dist-info/licenses/COPYING".to_string()));

    let both = format!("{pyproject}license-files = [\"COPYING\"]\n");
    let (_dir, err) = try_project(&[("pyproject.toml", &both), ("COPYING", "c")], Overrides::default());
    assert!(matches!(err.unwrap_err(), ProjectError::InvalidKey { key, .. } if key == "project.license-files"));
}

#[test]
fn an_upload_without_pyproject_is_described_by_its_readme_and_ships_it_with_its_tests() {
    let overrides = Overrides { name: Some("my-mult".into()), version: Some("0.3".into()), debug: false };
    let files = [("README.rst", "My mult\n=======\n\nMultiplies.\n"), ("tests/test_mult.py", "def test(): pass\n")];
    let (_dir, p) = project(&files, overrides);
    let (metadata, pkg_info, _, sdist_names) = built(&p);
    assert_eq!(metadata, pkg_info);
    assert!(
        metadata.ends_with("Description-Content-Type: text/x-rst\n\nMy mult\n=======\n\nMultiplies.\n"),
        "{metadata}"
    );
    for file in ["README.rst", "tests/test_mult.py", "pyproject.toml", "src/pymult.asm"] {
        assert!(sdist_names.contains(&format!("my_mult-0.3/{file}")), "{file} not in {sdist_names:?}");
    }
    let generated: toml::Table = sdist_pyproject(&p).unwrap().parse().unwrap();
    assert_eq!(generated["project"]["readme"].as_str(), Some("README.rst"));
}

/// Every file of every example, wheels for every target and the sdist, as
/// PyPI's own upload check sees them.
#[test]
fn twine_check_strict_passes_every_artifact_of_every_example() {
    let mut examples: Vec<_> = std::fs::read_dir(common::repo().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("src").is_dir())
        .collect();
    examples.sort();
    assert!(examples.len() >= 2, "{examples:?}");
    for example in &examples {
        let (report, dirs) = common::build(example, &Target::ALL, false);
        assert!(report.succeeded(), "{report:#?}");
        let mut files: Vec<_> = std::fs::read_dir(dirs.out.path()).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        assert_eq!(files.len(), Target::ALL.len() + 1, "a wheel per target and the sdist: {files:?}");
        let twine = std::process::Command::new(common::repo().join(".venv/bin/twine"))
            .args(["check", "--strict"])
            .args(&files)
            .output()
            .unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&twine.stdout), String::from_utf8_lossy(&twine.stderr));
        assert!(twine.status.success(), "{}: {said}", example.display());
        assert_eq!(said.matches("PASSED").count(), files.len(), "{said}");
    }
}
