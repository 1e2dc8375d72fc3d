//! Modules outside the stable ABI get one wheel per Python version, each
//! linked and tagged for that version.

mod common;

use common::*;
use object::Object;
use wheelwright_workers::platform::Target;
use wheelwright_workers::report::Status;

const PYMULT: &str = include_str!("../../examples/pymult/src/pymult.asm");

/// pymult with one (never reached) call outside the stable ABI.
fn unstable_pymult() -> String {
    PYMULT.replace("PYIMPORT PyArg_ParseTuple,", "PYIMPORT PyCell_New, PyArg_ParseTuple,").replace(
        "    PYCALL PyLong_FromLongLong",
        "    PYCALL PyLong_FromLongLong\n    FUNCTION_END\n    PYCALL PyCell_New",
    )
}

#[test]
fn version_specific_modules_get_a_wheel_per_python_version() {
    let pyproject = "[project]\nname = \"pymult\"\nversion = \"2.0\"\nrequires-python = \">=3.10\"\n";
    let dir = project(&[("src/pymult.asm", &unstable_pymult()), ("pyproject.toml", pyproject)]);
    let (report, dirs) = build(dir.path(), &Target::ALL, true);
    assert!(report.succeeded(), "{report:#?}");
    let host = python3().version;

    let linux = target(&report, Target::Linux);
    assert!(!linux.abi3);
    let names: Vec<&str> = linux.artifacts.iter().map(|a| a.filename.as_str()).collect();
    let expected: Vec<String> =
        (10..=14).map(|m| format!("pymult-2.0-cp3{m}-cp3{m}-manylinux_2_5_x86_64.manylinux1_x86_64.whl")).collect();
    assert_eq!(names, expected);
    // Only the wheel for the host's Python can be imported here.
    assert_eq!(linux.tests.len(), 1);
    assert_eq!(linux.tests[0].interpreter, format!("cpython-{host}"));
    assert_eq!(
        linux.tests[0].wheel,
        format!("pymult-2.0-cp{0}-cp{0}-manylinux_2_5_x86_64.manylinux1_x86_64.whl", host.nodot())
    );
    assert_eq!(linux.tests[0].passed, 1);
    let (member, _) = zip_member(&dirs.out.path().join(&expected[1]), |n| n.ends_with(".so"));
    assert_eq!(member, "pymult.cpython-311-x86_64-linux-gnu.so");

    let windows = target(&report, Target::Windows);
    assert_eq!(windows.status, Status::Succeeded);
    let wheel = dirs.out.path().join("pymult-2.0-cp312-cp312-win_amd64.whl");
    let (member, bytes) = zip_member(&wheel, |n| n.ends_with(".pyd"));
    assert_eq!(member, "pymult.cp312-win_amd64.pyd");
    let file = object::File::parse(bytes.as_slice()).unwrap();
    let libraries: Vec<Vec<u8>> = file.imports().unwrap().map(|i| i.unwrap().library().to_vec()).collect();
    assert!(libraries.iter().all(|l| l == b"python312.dll"), "{libraries:?}");

    let macos = target(&report, Target::Macos);
    assert_eq!(macos.artifacts[0].filename, "pymult-2.0-cp310-cp310-macosx_10_9_x86_64.whl");
    let (member, _) = zip_member(&macos.artifacts[0].path, |n| n.ends_with(".so"));
    assert_eq!(member, "pymult.cpython-310-darwin.so");
}

#[test]
fn python_versions_limit_the_version_specific_wheels() {
    let pyproject = "[tool.wheelwright]\npython-versions = [\"3.12\", \"3.9\"]\nmacos-deployment-target = \"11.0\"\n";
    let dir = project(&[("src/pymult.asm", &unstable_pymult()), ("pyproject.toml", pyproject)]);
    let (report, _dirs) = build(dir.path(), &[Target::Macos], false);
    let names: Vec<&str> = report.targets[0].artifacts.iter().map(|a| a.filename.as_str()).collect();
    assert_eq!(
        names,
        ["pymult-0.1.0-cp39-cp39-macosx_11_0_x86_64.whl", "pymult-0.1.0-cp312-cp312-macosx_11_0_x86_64.whl"]
    );
}
