//! Addresses back to `.asm` lines (crate::lines) with real nasm and the real
//! linkers, on all three targets: a function in the middle of a file, a
//! `%macro` expansion (answered at its call site), an `%include`d file, and
//! a linked module's address through the linker's map.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use object::{Object, ObjectSymbol};
use wheelwright_workers::lines::{Expansion, LinkMap, ModuleLines, ObjectLines, SourceDirs, SourceLine};
use wheelwright_workers::platform::{LinkJob, Target};
use wheelwright_workers::toolchain::{self, Tool};

const MAIN: &str = "\
; a module with a function in the middle
%include \"macros.inc\"
section .text
global PyInit_m
first:
    xor eax, eax
    ret
middle:
    push rbx
    mov ebx, 41
    BUMP ebx
    pop rbx
    ret
PyInit_m:
    call middle
    ret
%include \"tail.inc\"
section .data
value: dq 7
";

const MACROS: &str = "\
%macro BUMP 1
    inc %1
    add %1, 2
%endmacro
";

const TAIL: &str = "\
included_fn:
    mov eax, 3
    ret
";

struct Assembled {
    _dir: tempfile::TempDir,
    root: PathBuf,
    object: PathBuf,
    listing: PathBuf,
}

fn nasm() -> PathBuf {
    common::toolchain().path(Tool::Nasm).expect("nasm is installed").to_path_buf()
}

fn assemble(target: Target, listing: bool) -> (Assembled, Duration) {
    let dir = common::project(&[("src/m.asm", MAIN), ("src/macros.inc", MACROS), ("src/tail.inc", TAIL)]);
    let root = dir.path().to_path_buf();
    let object = root.join(format!("m.{}", target.object_extension()));
    let lst = root.join("m.lst");
    let mut cmd = Command::new(nasm());
    cmd.current_dir(&root).args(target.nasm_args(false)).arg("-Isrc/");
    if listing {
        cmd.arg("-l").arg(&lst);
    }
    cmd.arg("-o").arg(&object).arg("src/m.asm");
    let started = Instant::now();
    let status = cmd.status().unwrap();
    let took = started.elapsed();
    assert!(status.success(), "nasm failed for {target}");
    (Assembled { _dir: dir, root, object, listing: lst }, took)
}

fn dirs(root: &Path) -> SourceDirs {
    SourceDirs {
        project_root: root.to_path_buf(),
        main: PathBuf::from("src/m.asm"),
        include_dirs: vec![PathBuf::from("src/")],
        engine_include: None,
    }
}

fn object_lines(a: &Assembled) -> ObjectLines {
    let listing = std::fs::read_to_string(&a.listing).unwrap();
    let bytes = std::fs::read(&a.object).unwrap();
    let lines = ObjectLines::from_listing(&listing, &bytes, &dirs(&a.root)).unwrap();
    assert_eq!(lines.unplaced(), 0, "every listed line finds its section");
    lines
}

/// `(section, offset)` of a symbol in the object.
fn symbol(a: &Assembled, name: &str) -> (String, u64) {
    let bytes = std::fs::read(&a.object).unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    let sym = file.symbols().find(|s| s.name().is_ok_and(|n| n.trim_start_matches('_') == name)).unwrap();
    let section = file.section_by_index(sym.section_index().unwrap()).unwrap();
    use object::ObjectSection;
    (section.name().unwrap().to_string(), sym.address() - section.address())
}

fn line(file: &str, line: u32, text: &str) -> SourceLine {
    SourceLine { file: file.into(), line, text: text.into(), expansion: None }
}

#[test]
fn an_instruction_in_a_function_in_the_middle_maps_to_its_line_on_every_target() {
    for target in Target::ALL {
        let (a, _) = assemble(target, true);
        let lines = object_lines(&a);
        let (section, middle) = symbol(&a, "middle");
        // push rbx is one byte: `mov ebx, 41` starts right after it.
        assert_eq!(lines.at(&section, middle), Some(&line("src/m.asm", 9, "push rbx")), "{target}");
        assert_eq!(lines.at(&section, middle + 1), Some(&line("src/m.asm", 10, "mov ebx, 41")), "{target}");
        // Inside the 5-byte instruction: still that line.
        assert_eq!(lines.at(&section, middle + 5), Some(&line("src/m.asm", 10, "mov ebx, 41")), "{target}");
        let (_, first) = symbol(&a, "first");
        assert_eq!(lines.at(&section, first), Some(&line("src/m.asm", 6, "xor eax, eax")), "{target}");
    }
}

#[test]
fn a_macro_expansion_maps_to_its_call_site_with_the_definition_line() {
    for target in Target::ALL {
        let (a, _) = assemble(target, true);
        let lines = object_lines(&a);
        let (section, middle) = symbol(&a, "middle");
        // push rbx (1) + mov ebx, 41 (5): `inc ebx` (2 bytes), then `add ebx, 2`.
        let expanded = |line_in_macro: u32, text: &str| SourceLine {
            expansion: Some(Expansion {
                name: "BUMP".into(),
                file: Some("src/macros.inc".into()),
                line: line_in_macro,
                text: text.into(),
            }),
            ..line("src/m.asm", 11, "BUMP ebx")
        };
        assert_eq!(lines.at(&section, middle + 6), Some(&expanded(2, "inc %1")), "{target}");
        assert_eq!(lines.at(&section, middle + 8), Some(&expanded(3, "add %1, 2")), "{target}");
        assert_eq!(lines.at(&section, middle + 11), Some(&line("src/m.asm", 12, "pop rbx")), "{target}");
        assert_eq!(lines.at(&section, middle + 6).unwrap().to_string(), "src/m.asm:11: BUMP ebx (in macro BUMP)");
    }
}

#[test]
fn an_included_file_maps_to_its_own_lines_relative_to_the_project() {
    for target in Target::ALL {
        let (a, _) = assemble(target, true);
        let lines = object_lines(&a);
        let (section, included) = symbol(&a, "included_fn");
        assert_eq!(lines.at(&section, included), Some(&line("src/tail.inc", 2, "mov eax, 3")), "{target}");
        assert_eq!(lines.at(&section, included + 5), Some(&line("src/tail.inc", 3, "ret")), "{target}");
        // Data is placed in its own section, at its own line.
        let (data, value) = symbol(&a, "value");
        assert_ne!(data, section);
        assert_eq!(lines.at(&data, value), Some(&line("src/m.asm", 19, "value: dq 7")), "{target}");
        // Past the end of what was listed: nothing.
        assert_eq!(lines.at(&data, value + 8), None, "{target}");
    }
}

/// Links `a` for `target`, with or without a map; returns the module's bytes,
/// the map's text, and how long the link took.
fn link(target: Target, a: &Assembled, map: bool) -> (Vec<u8>, Option<String>, Duration) {
    let tools = toolchain::linker_for(target, &common::toolchain()).expect("the linker is installed");
    let output = a.root.join(target.module_filename("m", None));
    let map_path = a.root.join(format!("m-{target}.map"));
    let job = LinkJob {
        object: &a.object,
        output: &output,
        init_symbol: "PyInit_m",
        import_library: None,
        macos_min: "10.9",
        debug: false,
        map: map.then_some(map_path.as_path()),
    };
    let cmd = target.link_command(&tools, &job);
    let started = Instant::now();
    let status = Command::new(&cmd.program).args(&cmd.args).current_dir(&a.root).status().unwrap();
    let took = started.elapsed();
    assert!(status.success(), "{} failed", cmd.display());
    // The output name is written into Mach-O's UUID: compare like with like.
    let bytes = std::fs::read(&output).unwrap();
    std::fs::remove_file(&output).unwrap();
    (bytes, map.then(|| std::fs::read_to_string(&map_path).unwrap()), took)
}

#[test]
fn a_linked_modules_address_maps_through_the_linkers_map_on_every_target() {
    for target in Target::ALL {
        let (a, _) = assemble(target, true);
        let (module, map, _) = link(target, &a, true);
        let object_bytes = std::fs::read(&a.object).unwrap();
        let object_name = a.object.file_name().unwrap().to_str().unwrap();
        let map = map.unwrap();
        let map = LinkMap::parse(target, &map, object_name, &object_bytes).unwrap();
        let lines = ModuleLines { object: object_lines(&a), map };
        // The exported init function's address, as the module was linked.
        let file = object::File::parse(&*module).unwrap();
        let init = file
            .exports()
            .unwrap()
            .filter_map(Result::ok)
            .find_map(|e| match (e.name(), e.target()) {
                (object::NameOrOrdinal::Name(n), object::ExportTarget::Address { address })
                    if n.ends_with(b"PyInit_m") =>
                {
                    Some(address)
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("{target}: no PyInit_m export"));
        assert_eq!(lines.at_address(init), Some(&line("src/m.asm", 15, "call middle")), "{target}");
        // `middle` sits 13 bytes before PyInit_m (1 + 5 + 2 + 3 + 1 + 1), per the object.
        let (_, middle) = symbol(&a, "middle");
        let (_, init_offset) = symbol(&a, "PyInit_m");
        let middle_address = init - (init_offset - middle);
        assert_eq!(lines.at_address(middle_address + 1), Some(&line("src/m.asm", 10, "mov ebx, 41")), "{target}");
        assert_eq!(lines.at_address(middle_address + 6).unwrap().line, 11, "{target}");
        assert_eq!(lines.at_address(0x7fff_0000_0000), None, "{target}");
    }
}

#[test]
fn the_listing_and_the_map_change_no_byte_and_cost_little() {
    for target in Target::ALL {
        // Best of three runs each, to keep scheduling noise out of the log.
        let mut plain = Duration::MAX;
        let mut listed = Duration::MAX;
        let mut link_plain = Duration::MAX;
        let mut link_mapped = Duration::MAX;
        for _ in 0..3 {
            let (a, t0) = assemble(target, false);
            let without = std::fs::read(&a.object).unwrap();
            let (b, t1) = assemble(target, true);
            let with = std::fs::read(&b.object).unwrap();
            assert!(without == with, "{target}: -l changed the object");
            let (m0, _, l0) = link(target, &b, false);
            let (m1, _, l1) = link(target, &b, true);
            assert!(m0 == m1, "{target}: the map changed the module");
            plain = plain.min(t0);
            listed = listed.min(t1);
            link_plain = link_plain.min(l0);
            link_mapped = link_mapped.min(l1);
        }
        eprintln!(
            "{target}: nasm {:.2} ms, with -l {:.2} ms; link {:.2} ms, with map {:.2} ms",
            plain.as_secs_f64() * 1e3,
            listed.as_secs_f64() * 1e3,
            link_plain.as_secs_f64() * 1e3,
            link_mapped.as_secs_f64() * 1e3
        );
    }
}

#[test]
fn the_build_keeps_the_listing_and_the_map_out_of_the_wheel_and_they_map_pymult() {
    let root = common::example("pymult");
    let (report, dirs) = common::build(&root, &Target::ALL, false);
    let source = std::fs::read_to_string(root.join("src/pymult.asm")).unwrap();
    let pyinit_line = source.lines().position(|l| l.trim() == "PYINIT pymult").unwrap() as u32 + 1;
    for target in Target::ALL {
        let t = common::target(&report, target);
        assert_eq!(t.status, wheelwright_workers::report::Status::Succeeded, "{target}: {:?}", t.reason);
        let wheel = &t.artifacts[0].path;
        let archive = zip::ZipArchive::new(std::fs::File::open(wheel).unwrap()).unwrap();
        let names: Vec<String> = archive.file_names().map(|n| n.unwrap().into_owned()).collect();
        assert!(!names.iter().any(|n| n.ends_with(".lst") || n.ends_with(".map")), "{target}: {names:?}");

        let target_dir = dirs.work.path().join(target.name());
        let object = target_dir.join("obj").join(format!("pymult.{}", target.object_extension()));
        let listing = std::fs::read_to_string(wheelwright_workers::lines::listing_path(&object)).unwrap();
        let map = std::fs::read_to_string(wheelwright_workers::lines::map_path(&target_dir, "abi3", "pymult")).unwrap();
        let object_bytes = std::fs::read(&object).unwrap();
        let include = dirs.work.path().join("include");
        let source_dirs = SourceDirs {
            project_root: root.clone(),
            main: PathBuf::from("src/pymult.asm"),
            include_dirs: vec![PathBuf::from("src/"), include.clone()],
            engine_include: Some(include),
        };
        let object_name = object.file_name().unwrap().to_str().unwrap();
        let lines = ModuleLines {
            object: ObjectLines::from_listing(&listing, &object_bytes, &source_dirs).unwrap(),
            map: LinkMap::parse(target, &map, object_name, &object_bytes).unwrap(),
        };
        assert_eq!(lines.object.unplaced(), 0, "{target}");
        // The init function's first instruction comes from FUNCTION_BEGIN,
        // the line after PYINIT (which only defines the label), a macro of
        // wheelwright.inc: answered at its call site in pymult.asm.
        let (_, module_bytes) = common::zip_member(wheel, |n| n.starts_with("pymult"));
        let file = object::File::parse(&*module_bytes).unwrap();
        let init = file
            .exports()
            .unwrap()
            .filter_map(Result::ok)
            .find_map(|e| match (e.name(), e.target()) {
                (object::NameOrOrdinal::Name(n), object::ExportTarget::Address { address })
                    if n.ends_with(b"PyInit_pymult") =>
                {
                    Some(address)
                }
                _ => None,
            })
            .unwrap();
        let at = lines.at_address(init).unwrap_or_else(|| panic!("{target}: no line for PyInit_pymult"));
        assert_eq!(
            (at.file.as_str(), at.line, at.text.as_str()),
            ("src/pymult.asm", pyinit_line + 1, "FUNCTION_BEGIN 0"),
            "{target}"
        );
        let expansion = at.expansion.as_ref().unwrap();
        assert_eq!(
            (expansion.name.as_str(), expansion.file.as_deref()),
            ("FUNCTION_BEGIN", Some("wheelwright.inc")),
            "{target}"
        );
    }
}
