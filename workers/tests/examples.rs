//! The examples built for every target: wheels that verify, install with pip,
//! read back correctly with independent readers, and are reproducible.

mod common;

use std::path::Path;

use common::*;
use object::{Object, ObjectSection, ObjectSymbol};
use wheelwright_workers::platform::Target;
use wheelwright_workers::report::{Status, Step};

const LINUX_WHEEL: &str = "pymult-1.0.0-cp38-abi3-manylinux_2_5_x86_64.manylinux1_x86_64.whl";
const MACOS_WHEEL: &str = "pymult-1.0.0-cp38-abi3-macosx_10_9_x86_64.whl";
const WINDOWS_WHEEL: &str = "pymult-1.0.0-cp38-abi3-win_amd64.whl";

#[test]
fn pymult_builds_three_wheels_whose_tests_pass_on_every_target_and_the_linux_one_installs_with_pip() {
    let (report, dirs) = build(&example("pymult"), &Target::ALL, true);
    for t in &report.targets {
        assert_eq!(t.status, Status::Succeeded, "{t:#?}");
        assert!(t.abi3);
    }
    let files: Vec<Vec<&str>> =
        report.targets.iter().map(|t| t.artifacts.iter().map(|a| a.filename.as_str()).collect()).collect();
    assert_eq!(files, vec![vec![LINUX_WHEEL], vec![MACOS_WHEEL], vec![WINDOWS_WHEEL]]);
    assert_eq!(report.sdist.as_ref().unwrap().filename, "pymult-1.0.0.tar.gz");

    let linux = target(&report, Target::Linux);
    assert_eq!(linux.tests.len(), 1);
    assert_eq!((linux.tests[0].passed, linux.tests[0].failed, linux.tests[0].errors), (7, 0, 0));
    assert_eq!(linux.tests[0].model, None);
    for (t, label) in [
        (Target::Macos, "tests run on the Linux host under the macOS x86-64 ABI model"),
        (Target::Windows, "tests run on the Linux host under the Windows x64 ABI model"),
    ] {
        let report = target(&report, t);
        let smoke = report.steps.iter().find(|s| s.name == Step::Smoke).unwrap();
        assert_eq!(smoke.status, Status::Succeeded, "{report:#?}");
        assert_eq!(report.reason.as_deref(), Some(label));
        assert_eq!(report.tests.len(), 1);
        let run = &report.tests[0];
        assert_eq!((run.passed, run.failed, run.errors, run.model.as_deref()), (7, 0, 0, Some(label)));
    }

    // pip's own installer into a fresh virtual environment, then a call.
    let venv = tempfile::tempdir().unwrap();
    run_python(Path::new("python3"), &format!("import venv; venv.create({:?}, with_pip=False)", venv.path()), &[]);
    let fresh = venv.path().join("bin/python");
    let wheel = dirs.out.path().join(LINUX_WHEEL);
    let pip = std::process::Command::new(venv_python())
        .args(["-m", "pip", "--disable-pip-version-check", "--python"])
        .arg(&fresh)
        .args(["install", "--no-index", "--no-deps"])
        .arg(&wheel)
        .output()
        .unwrap();
    assert!(pip.status.success(), "{}", String::from_utf8_lossy(&pip.stderr));
    let out = run_python(&fresh, "import pymult; print(pymult.multiply(2**40, 3), pymult.multiply(-7, 6))", &[]);
    assert_eq!(out.trim(), "3298534883328 -42");
}

#[test]
fn every_binary_exports_its_init_function_and_imports_only_the_c_api() {
    let (report, dirs) = build(&example("pymult"), &Target::ALL, false);
    let expected =
        ["PyArg_ParseTuple", "PyErr_SetString", "PyExc_OverflowError", "PyLong_FromLongLong", "PyModule_Create2"];
    for (wheel, suffix, prefix, format) in [
        (LINUX_WHEEL, "pymult.abi3.so", "", object::BinaryFormat::Elf),
        (MACOS_WHEEL, "pymult.abi3.so", "_", object::BinaryFormat::MachO),
        (WINDOWS_WHEEL, "pymult.pyd", "", object::BinaryFormat::Pe),
    ] {
        assert!(report.succeeded());
        let (name, bytes) = zip_member(&dirs.out.path().join(wheel), |n| n == suffix);
        let file = object::File::parse(bytes.as_slice()).unwrap();
        assert_eq!(file.format(), format, "{name}");
        assert_eq!(file.architecture(), object::Architecture::X86_64);
        let exports: Vec<String> = file
            .exports()
            .unwrap()
            .map(|e| String::from_utf8_lossy(e.unwrap().name().name().unwrap()).into_owned())
            .collect();
        assert!(exports.contains(&format!("{prefix}PyInit_pymult")), "{wheel}: {exports:?}");
        let mut imports: Vec<String> = file
            .imports()
            .unwrap()
            .map(|i| String::from_utf8_lossy(i.unwrap().name().name().unwrap()).trim_start_matches(prefix).to_string())
            .filter(|n| n != "dyld_stub_binder")
            .collect();
        imports.sort();
        assert_eq!(imports, expected, "{wheel}");
        if format == object::BinaryFormat::Pe {
            let libs: Vec<Vec<u8>> = file.imports().unwrap().map(|i| i.unwrap().library().to_vec()).collect();
            assert!(libs.iter().all(|l| l == b"python3.dll"), "{libs:?}");
        }
        if format == object::BinaryFormat::Elf {
            // Nothing local leaks into the dynamic symbol table.
            let dynamic: Vec<String> =
                file.dynamic_symbols().filter(|s| s.is_definition()).map(|s| s.name().unwrap().to_string()).collect();
            assert_eq!(dynamic, ["PyInit_pymult"]);
        }
    }
}

#[test]
fn wheels_pass_an_independent_reader() {
    let (report, dirs) = build(&example("vecstats"), &Target::ALL, false);
    assert!(report.succeeded(), "{report:#?}");
    // Python's zipfile and hashlib re-check RECORD, WHEEL and METADATA.
    let checker = r#"
import base64, csv, hashlib, io, sys, zipfile
for path in sys.argv[1:]:
    z = zipfile.ZipFile(path)
    assert z.testzip() is None
    names = z.namelist()
    dist_info = [n.split("/")[0] for n in names if n.endswith(".dist-info/RECORD")][0]
    rows = list(csv.reader(io.StringIO(z.read(dist_info + "/RECORD").decode())))
    listed = {r[0] for r in rows}
    assert listed == set(names), (listed ^ set(names))
    for name, digest, size in rows:
        if name.endswith("RECORD"):
            assert digest == "" and size == ""
            continue
        data = z.read(name)
        algo, value = digest.split("=", 1)
        assert algo == "sha256"
        assert base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode() == value, name
        assert int(size) == len(data), name
    wheel = z.read(dist_info + "/WHEEL").decode()
    assert "Root-Is-Purelib: false" in wheel
    tags = [l.split(": ")[1] for l in wheel.splitlines() if l.startswith("Tag: ")]
    parts = path.rsplit("/", 1)[1][:-4].split("-")
    expected = [f"{parts[2]}-{parts[3]}-{p}" for p in parts[4].split(".")]
    assert tags == expected, (tags, expected)
    meta = z.read(dist_info + "/METADATA").decode()
    assert "Metadata-Version: 2.1\nName: vecstats\nVersion: 0.2.0\n" in meta, meta
    assert "Requires-Python: >=3.9" in meta
    assert "Author-email: The wheelwright developers <dev@example.invalid>" in meta
    assert "vecstats/__init__.py" in names
    print(path.rsplit("/", 1)[1], len(names))
"#;
    let mut cmd = std::process::Command::new("python3");
    cmd.arg("-c").arg(checker);
    for t in &report.targets {
        cmd.arg(&t.artifacts[0].path);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(printed.lines().count(), 3, "{printed}");
    assert!(printed.contains("vecstats-0.2.0-cp39-abi3-manylinux_2_5_x86_64.manylinux1_x86_64.whl 5"));

    // The sdist holds PKG-INFO and the project's files under one folder.
    let sdist = report.sdist.as_ref().unwrap();
    let listing = run_python(
        Path::new("python3"),
        &format!("import tarfile; print('\\n'.join(sorted(tarfile.open({:?}).getnames())))", sdist.path),
        &[],
    );
    assert_eq!(
        listing.lines().collect::<Vec<_>>(),
        [
            "vecstats-0.2.0/PKG-INFO",
            "vecstats-0.2.0/README.md",
            "vecstats-0.2.0/pyproject.toml",
            "vecstats-0.2.0/src/vecstats/__init__.py",
            "vecstats-0.2.0/src/vecstats/_native.asm",
            "vecstats-0.2.0/tests/test_vecstats.py",
        ]
    );
    let _ = dirs;
}

#[test]
fn identical_input_gives_byte_identical_artifacts() {
    let (first, _a) = build(&example("pymult"), &Target::ALL, false);
    let (second, _b) = build(&example("pymult"), &Target::ALL, false);
    let digests = |r: &wheelwright_workers::report::BuildReport| {
        let mut all: Vec<(String, String)> =
            r.targets.iter().flat_map(|t| &t.artifacts).map(|a| (a.filename.clone(), a.sha256.clone())).collect();
        let sdist = r.sdist.as_ref().unwrap();
        all.push((sdist.filename.clone(), sdist.sha256.clone()));
        all
    };
    assert_eq!(digests(&first).len(), 4);
    assert_eq!(digests(&first), digests(&second));
}

#[test]
fn source_date_epoch_sets_the_archive_timestamps() {
    let project = wheelwright_workers::project::Project::load(&example("pymult"), &Default::default()).unwrap();
    let (mut options, dirs) = options(&[Target::Linux], false);
    options.source_date_epoch = Some(1_700_000_000); // 2023-11-14 22:13:20 UTC
    let report = wheelwright_workers::pipeline::build(&project, &options, &|_| {});
    let wheel = &target(&report, Target::Linux).artifacts[0].path;
    let mut zip = zip::ZipArchive::new(std::fs::File::open(wheel).unwrap()).unwrap();
    let entry = zip.by_index(0).unwrap();
    let t = entry.last_modified().unwrap();
    assert_eq!((t.year(), t.month(), t.day(), t.hour(), t.minute(), t.second()), (2023, 11, 14, 22, 13, 20));
    let _ = dirs;
}

#[test]
fn vecstats_passes_its_tests_as_a_package() {
    let (report, _dirs) = build(&example("vecstats"), &[Target::Linux], true);
    let linux = target(&report, Target::Linux);
    assert_eq!(linux.status, Status::Succeeded, "{linux:#?}");
    assert_eq!((linux.tests[0].passed, linux.tests[0].failed), (8, 0));
    assert_eq!(linux.artifacts[0].filename, "vecstats-0.2.0-cp39-abi3-manylinux_2_5_x86_64.manylinux1_x86_64.whl");
}

#[test]
fn debug_builds_carry_line_information() {
    let project = wheelwright_workers::project::Project::load(
        &example("pymult"),
        &wheelwright_workers::project::Overrides { debug: true, ..Default::default() },
    )
    .unwrap();
    assert!(project.settings.debug);
    let (options, dirs) = options(&[Target::Linux, Target::Macos], false);
    let report = wheelwright_workers::pipeline::build(&project, &options, &|_| {});
    assert!(report.succeeded(), "{report:#?}");
    let (_, bytes) = zip_member(&dirs.out.path().join(LINUX_WHEEL), |n| n.ends_with(".so"));
    let file = object::File::parse(bytes.as_slice()).unwrap();
    let sections: Vec<String> = file.sections().filter_map(|s| s.name().ok().map(str::to_string)).collect();
    assert!(sections.iter().any(|s| s == ".debug_line"), "{sections:?}");
}

#[test]
fn every_example_passes_on_every_local_interpreter() {
    let interpreters = wheelwright_workers::smoke::Interpreter::discover();
    assert!(!interpreters.is_empty());
    for entry in std::fs::read_dir(repo().join("examples")).unwrap() {
        let root = entry.unwrap().path();
        let project = wheelwright_workers::project::Project::load(&root, &Default::default()).unwrap();
        let (mut options, _dirs) = options(&[Target::Linux], true);
        options.interpreters = interpreters.clone();
        let report = wheelwright_workers::pipeline::build(&project, &options, &|_| {});
        let linux = target(&report, Target::Linux);
        assert_eq!(linux.status, Status::Succeeded, "{}: {linux:#?}", root.display());
        let admitted: Vec<String> = interpreters
            .iter()
            .filter(|i| project.metadata.requires_python.admits(i.version))
            .map(|i| i.label())
            .collect();
        let tested: Vec<String> = linux.tests.iter().map(|t| t.interpreter.clone()).collect();
        assert_eq!(tested, admitted, "{}", root.display());
        assert!(linux.tests.iter().all(|t| t.passed > 0 && t.failed == 0 && t.errors == 0));
    }
}
