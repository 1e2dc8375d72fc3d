//! Explaining a crash: the signal, Python's faulthandler traceback, and —
//! with gdb — the faulting instruction, symbol + offset, registers and the
//! `.asm` line when the module carries DWARF.

use std::path::{Path, PathBuf};

use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol};

use crate::lines::{ModuleLines, SourceLine};
use crate::platform::Target;
use crate::project::Project;
use crate::readback::Root;
use crate::report::CrashReport;

/// Registers shown in a crash report, in this order.
const REGISTERS: [&str; 18] = [
    "rip", "rsp", "rbp", "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14",
    "r15", "eflags",
];

/// Extensions of the project files a line table may name: modules and includes.
const SOURCE_EXTENSIONS: [&str; 4] = ["asm", "nasm", "inc", "mac"];

/// The project's own assembly sources, read into memory by the host from the
/// project's file list: the only text a crash report quotes. A file name
/// from gdb (or anything else the sandbox prints) is looked up here by exact
/// relative path and never opened, so no output can make the host read a
/// file of its choosing.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    files: Vec<(String, String)>,
}

impl Sources {
    /// Reads the `.asm` (and include) files the project lists, each at most
    /// `max` bytes, without following links; files that cannot be read are
    /// left out (their lines are then not shown).
    pub fn load(project: &Project, max: u64) -> Sources {
        let Ok(root) = Root::open(&project.root) else { return Sources::default() };
        let files = project
            .sdist_files
            .iter()
            .filter(|p| p.extension().and_then(|e| e.to_str()).is_some_and(|e| SOURCE_EXTENSIONS.contains(&e)))
            .filter_map(|rel| {
                let bytes = root.read(rel, max, "a source").ok()?;
                let name = rel.iter().map(|c| c.to_string_lossy()).collect::<Vec<_>>().join("/");
                Some((name, String::from_utf8_lossy(&bytes).into_owned()))
            })
            .collect();
        Sources { files }
    }

    /// Sources given directly: `(path relative to the project, text)`.
    pub fn from_files(files: Vec<(String, String)>) -> Sources {
        Sources { files }
    }

    /// Line `number` (from 1) of the source whose relative path is exactly `file`.
    pub fn line(&self, file: &str, number: usize) -> Option<&str> {
        let (_, text) = self.files.iter().find(|(name, _)| name == file)?;
        text.lines().nth(number.checked_sub(1)?)
    }
}

/// A gdb run's secret section marker: 128 random bits, new for every run.
///
/// The program under gdb writes to the same output as gdb, so it could print
/// sections of its own; it cannot print one with this marker, because no
/// sandboxed process can learn it:
///
/// - it is only in the command file (see [`gdb_script`]), never on gdb's
///   command line (readable through `/proc` inside the sandbox);
/// - gdb starts without the inferior's Python environment (no `PYTHONPATH`
///   naming the wheel's site directory, which the upload fills; see
///   [`gdb_args`]) and with auto-loading off, so no code of the project runs
///   in gdb before the command file: its first command makes gdb
///   non-dumpable (neither its memory nor its open files can then be read
///   through `/proc` or ptrace by a process of the same user), its second
///   deletes the file, and only then does the program start;
/// - the output pipe gdb writes to is also held by the sandbox's pid 1: the
///   Landlock helper, not dumpable, whose `/proc/1/fd/1` no process of the
///   sandbox can open; but in a sandbox without the helper it is
///   bubblewrap's reaper, which is dumpable, and a process of the sandbox
///   could open the pipe there and race the host to read the marked
///   answers. So gdb collects every answer first, then kills every other
///   process it may signal (all of the sandbox but its init), waits until
///   they are gone, and only then prints its answers under the marker.
///
/// A separate channel would not hold: a file in the job directory can be
/// written by the program, and any descriptor gdb holds is one the
/// sandbox's init can hold too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker(String);

impl Marker {
    /// A fresh marker from the kernel's random source.
    pub fn new() -> std::io::Result<Marker> {
        Ok(Marker(format!("@@{}", random_hex()?)))
    }

    /// The header line of section `name`.
    fn header(&self, name: &str) -> String {
        format!("{} {name}", self.0)
    }

    /// gdb's output with the marker replaced by `@@`, for the build log.
    pub fn scrub(&self, text: &str) -> String {
        text.replace(&self.0, "@@")
    }
}

/// The commands gdb reads from `script` (its own path): make gdb
/// non-dumpable and delete the file, give the program its `PYTHONPATH`
/// (`python_path`: the site directory, after the ABI model's harness for a
/// foreign target; gdb itself runs without it), run the program with its output
/// thrown away (the first run already showed it), then collect where it
/// stopped, kill every other process of the sandbox, and print each answer
/// under a section headed by `marker`. An error in a command file ends it in
/// batch mode, so if gdb cannot protect itself (no Python in this gdb, prctl
/// refused) it runs nothing and the report has no gdb part; if the other
/// processes do not go away, it prints no answers.
pub fn gdb_script(marker: &Marker, script: &Path, python_path: &str) -> String {
    let quoted = |text: &str| serde_json::to_string(text).expect("a string serialises");
    let script = quoted(&script.display().to_string());
    let mut commands = format!(
        "python\n\
         import ctypes, os\n\
         if ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0) != 0:  # PR_SET_DUMPABLE\n\
         \x20   raise OSError(ctypes.get_errno(), 'prctl(PR_SET_DUMPABLE, 0)')\n\
         os.unlink({script})\n\
         end\n"
    );
    for command in [
        "set pagination off",
        "set confirm off",
        "set debuginfod enabled off",
        "set disassembly-flavor intel",
        "set startup-with-shell off",
        "set inferior-tty /dev/null",
    ] {
        commands.push_str(command);
        commands.push('\n');
    }
    // `set environment` takes the rest of the line as the value, verbatim.
    commands.push_str(&format!("set environment PYTHONPATH {python_path}\n"));
    commands.push_str("run\n");
    let sections: Vec<String> = [
        ("registers", format!("info registers {}", REGISTERS.join(" "))),
        ("instruction", "x/i $pc".to_string()),
        ("symbol", "info symbol $pc".to_string()),
        ("line", "info line *$pc".to_string()),
    ]
    .iter()
    .map(|(name, command)| format!("({}, {})", quoted(name), quoted(command)))
    .collect();
    // Every answer is read before anything is printed under the marker, and
    // nothing is printed while another process of the sandbox (which could
    // read the pipe through /proc/1/fd/1 where pid 1 is bubblewrap's
    // reaper: a sandbox without the helper) may still run. A dead process is
    // a zombie (state Z or X) until its parent or init reaps it.
    commands.push_str(&format!(
        "python\n\
         import signal, time\n\
         answers = []\n\
         for name, command in [{sections}]:\n\
         \x20   try:\n\
         \x20       answers.append((name, gdb.execute(command, to_string=True)))\n\
         \x20   except gdb.error as e:\n\
         \x20       answers.append((name, str(e) + '\\n'))\n\
         def others_alive():\n\
         \x20   me = str(os.getpid())\n\
         \x20   for pid in os.listdir('/proc'):\n\
         \x20       if not pid.isdigit() or pid in ('1', me):\n\
         \x20           continue\n\
         \x20       try:\n\
         \x20           tasks = os.listdir(f'/proc/{{pid}}/task')\n\
         \x20       except OSError:\n\
         \x20           continue\n\
         \x20       for task in tasks:\n\
         \x20           try:\n\
         \x20               with open(f'/proc/{{pid}}/task/{{task}}/stat') as f:\n\
         \x20                   state = f.read().rsplit(')', 1)[1].split()[0]\n\
         \x20           except (OSError, IndexError):\n\
         \x20               continue\n\
         \x20           if state not in ('Z', 'X'):\n\
         \x20               return True\n\
         \x20   return False\n\
         deadline = time.monotonic() + 5\n\
         while True:\n\
         \x20   try:\n\
         \x20       os.kill(-1, signal.SIGKILL)\n\
         \x20   except ProcessLookupError:\n\
         \x20       pass\n\
         \x20   if not others_alive():\n\
         \x20       break\n\
         \x20   if time.monotonic() > deadline:\n\
         \x20       raise RuntimeError('the sandbox kept running processes')\n\
         \x20   time.sleep(0.01)\n\
         for name, text in answers:\n\
         \x20   gdb.write({header} + name + '\\n' + text + ('' if text.endswith('\\n') else '\\n'))\n\
         gdb.write({header} + 'end\\n')\n\
         gdb.flush()\n\
         end\n",
        sections = sections.join(", "),
        header = quoted(&marker.header("")),
    ));
    commands
}

/// 128 random bits from the kernel, in hex.
fn random_hex() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    // SAFETY: the buffer is valid for its length.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        return Err(std::io::Error::last_os_error());
    }
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// gdb's arguments that run `script` (see [`gdb_script`]) on `program args...`.
///
/// gdb's embedded Python reads `PYTHONPATH`, `PYTHONSTARTUP` and the like
/// when it starts, before any command file, and imports `sitecustomize`
/// from them: `set python ignore-environment` has to come as an early
/// initialisation command (`-eiex`, run before Python starts; `-iex` is too
/// late). Auto-loading would run scripts named after (or embedded in) the
/// project's shared objects. gdb is also started without `PYTHONPATH`
/// (see [`gdb_script`] for how the program gets it).
pub fn gdb_args(script: &Path, program: &Path, args: &[String]) -> Vec<String> {
    let mut gdb: Vec<String> =
        ["-nx", "-batch", "-q", "-eiex", "set python ignore-environment on", "-iex", "set auto-load off", "-x"]
            .map(String::from)
            .to_vec();
    gdb.push(script.display().to_string());
    gdb.push("--args".into());
    gdb.push(program.display().to_string());
    gdb.extend(args.iter().cloned());
    gdb
}

/// Where gdb's command file goes in the job directory `dir`: a random name
/// (not derived from the marker: the name is on gdb's command line), so
/// that nothing can be waiting there.
pub fn script_path(dir: &Path) -> std::io::Result<PathBuf> {
    Ok(dir.join(format!(".wheelwright-gdb-{}", random_hex()?)))
}

/// The faulthandler block of a run's output (`Fatal Python error: ...` and
/// the stacks after it).
pub fn python_traceback(output: &str) -> Option<String> {
    let start = output.find("Fatal Python error")?;
    let block: Vec<&str> = output[start..]
        .lines()
        .take_while(|l| !l.starts_with("Extension modules:") && !l.starts_with("[wheelwright"))
        .collect();
    Some(block.join("\n").trim_end().to_string())
}

/// Builds the report from the signal, the run's output and gdb's output
/// with its run's marker: only sections headed by the marker are gdb's, and
/// a source line is quoted only from `sources`.
pub fn report(signal: &str, output: &str, gdb: Option<(&str, &Marker)>, sources: &Sources) -> CrashReport {
    let mut crash = CrashReport {
        signal: signal.to_string(),
        python_traceback: python_traceback(output),
        instruction: None,
        location: None,
        source_line: None,
        registers: Vec::new(),
    };
    let Some((gdb, marker)) = gdb else { return crash };
    let section = |name: &str| -> Vec<&str> {
        let header = marker.header(name);
        gdb.lines().skip_while(|l| l.trim_end() != header).skip(1).take_while(|l| !l.starts_with(&marker.0)).collect()
    };
    for line in section("registers") {
        let mut words = line.split_whitespace();
        if let (Some(name), Some(value)) = (words.next(), words.next()) {
            if REGISTERS.contains(&name) && !crash.registers.iter().any(|(r, _)| r == name) {
                crash.registers.push((name.to_string(), value.to_string()));
            }
        }
    }
    crash.instruction = section("instruction")
        .into_iter()
        .find(|l| l.contains("=>"))
        .map(|l| l.trim_start_matches("=>").split_whitespace().collect::<Vec<_>>().join(" "));
    crash.location = section("symbol").into_iter().find(|l| l.contains(" in section ")).map(|l| {
        // "mean + 18 in section .text of /job/.../m.abi3.so"
        let (symbol, rest) = l.split_once(" in section ").unwrap_or((l, ""));
        let file = rest.split_once(" of ").map(|(_, f)| f).unwrap_or("");
        let file = Path::new(file).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        if file.is_empty() {
            symbol.trim().to_string()
        } else {
            format!("{} in {file}", symbol.trim())
        }
    });
    // "Line 25 of \"src/crash.asm\" starts at address ..."; the name comes
    // from the module's line table, which the project wrote: it only selects
    // one of the project's own sources.
    crash.source_line = section("line").into_iter().find_map(|l| {
        let rest = l.trim().strip_prefix("Line ")?;
        let (number, rest) = rest.split_once(" of \"")?;
        let (file, _) = rest.split_once('"')?;
        let number: usize = number.parse().ok()?;
        let text = sources.line(file, number)?.trim();
        Some(format!("{file}:{number}: {text}").trim_end().trim_end_matches(':').to_string())
    });
    crash
}

/// The ABI model's record of where it mapped each image, in the run folder
/// (`_wheelwright_abimodel/images.py` writes it).
pub const IMAGES_FILE: &str = ".wheelwright-abimodel-images";

/// The most bytes of that record read back.
pub const IMAGES_MAX: u64 = 64 << 10;

/// The most images one record may list (one per module of a wheel).
const IMAGES_MAX_LINES: usize = 256;

/// One line of the model's record: an image mapped at `base`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedImage {
    /// The model's target.
    pub target: Target,
    /// Where the image's lowest linked address was mapped.
    pub base: u64,
    /// How many bytes it occupies from there.
    pub size: u64,
    /// Its file name, as the record says (untrusted: only compared).
    pub name: String,
}

/// The lines of a record that are well formed; the rest is ignored. The
/// record was written inside the sandbox: what it says is only compared with
/// the host's own module list and used as numbers.
pub fn parse_images(text: &str) -> Vec<MappedImage> {
    text.lines()
        .take(IMAGES_MAX_LINES)
        .filter_map(|line| {
            let mut words = line.split(' ');
            let word = words.next()?;
            let target = *[Target::Macos, Target::Windows].iter().find(|t| t.name() == word)?;
            let base = u64::from_str_radix(words.next()?, 16).ok()?;
            let size = u64::from_str_radix(words.next()?, 16).ok()?;
            let name = words.next()?.to_string();
            (words.next().is_none() && size > 0 && base.checked_add(size).is_some()).then_some(MappedImage {
                target,
                base,
                size,
                name,
            })
        })
        .collect()
}

/// What the host knows of one module it built, to symbolise an address in
/// it: all from the build's own files, none from the sandbox.
#[derive(Debug)]
pub struct ModuleSymbols {
    /// The module's file name in the wheel (`pymult.pyd`).
    pub name: String,
    /// The target it was linked for.
    pub target: Target,
    /// Its lowest linked address (Mach-O: 0; PE: the preferred `ImageBase`):
    /// what a record's `base` corresponds to.
    pub link_base: u64,
    /// Its code symbols as linked, sorted by address.
    pub symbols: Vec<(u64, String)>,
    /// Its line table, when the build kept one.
    pub lines: Option<ModuleLines>,
}

impl ModuleSymbols {
    /// Reads the symbols of the linked module `bytes` (as shipped).
    pub fn from_module(
        name: &str,
        target: Target,
        bytes: &[u8],
        lines: Option<ModuleLines>,
    ) -> Result<ModuleSymbols, object::Error> {
        let file = object::File::parse(bytes)?;
        let link_base = match target {
            Target::Windows => file.relative_address_base(),
            _ => file.segments().map(|s| s.address()).min().unwrap_or(0),
        };
        let prefix = target.symbol_prefix();
        let mut symbols: Vec<(u64, String)> = file
            .symbols()
            .filter(|s| s.kind() == object::SymbolKind::Text && s.is_definition())
            .filter_map(|s| {
                let name = s.name().ok()?;
                Some((s.address(), name.strip_prefix(prefix).unwrap_or(name).to_string()))
            })
            .collect();
        symbols.sort();
        symbols.dedup_by_key(|s| s.0);
        Ok(ModuleSymbols { name: name.to_string(), target, link_base, symbols, lines })
    }
}

impl ModuleSymbols {
    /// Adds the code symbols of the module's `object` (local labels
    /// included) at their linked addresses, placed by the line table's map;
    /// nothing without a line table.
    pub fn add_object_symbols(&mut self, object: &[u8]) {
        let (Some(lines), Ok(file)) = (&self.lines, object::File::parse(object)) else { return };
        let prefix = self.target.symbol_prefix();
        // Labels in code sections: COFF types nasm's labels as plain
        // statics, not functions, so the section says what they are.
        let labels = file
            .symbols()
            .filter(|s| s.is_definition() && matches!(s.kind(), object::SymbolKind::Text | object::SymbolKind::Data));
        for symbol in labels {
            let (Some(index), Ok(name)) = (symbol.section_index(), symbol.name()) else { continue };
            let Some(section) = file.section_by_index(index).ok() else { continue };
            if section.kind() != object::SectionKind::Text {
                continue;
            }
            let Ok(section_name) = section.name() else { continue };
            let Some(place) = lines.map.placements.iter().find(|p| p.section == section_name) else { continue };
            let address = place.address + (symbol.address() - section.address());
            if !self.symbols.iter().any(|s| s.0 == address) {
                self.symbols.push((address, name.strip_prefix(prefix).unwrap_or(name).to_string()));
            }
        }
        self.symbols.sort();
    }
}

/// The symbol + offset (`multiply + 18 in pymult.pyd`) and `.asm` line of
/// `pc` in a hand-mapped image: the record says where each image went, the
/// host's own tables say what is there.
pub fn symbolise(pc: u64, images: &[MappedImage], modules: &[ModuleSymbols]) -> Option<(String, Option<SourceLine>)> {
    let image = images.iter().rev().find(|i| i.base <= pc && pc - i.base < i.size)?;
    let module = modules.iter().find(|m| m.name == image.name && m.target == image.target)?;
    let linked = module.link_base.checked_add(pc - image.base)?;
    let i = module.symbols.partition_point(|s| s.0 <= linked);
    let location = match i.checked_sub(1).map(|i| &module.symbols[i]) {
        Some((address, symbol)) => format!("{symbol} + {} in {}", linked - address, module.name),
        None => format!("{:#x} in {}", linked, module.name),
    };
    let line = module.lines.as_ref().and_then(|l| l.at_address(linked)).cloned();
    Some((location, line))
}

/// Fills in where a crash under an ABI model happened, which gdb cannot
/// say for a hand-mapped image: from the faulting `rip` gdb reported and
/// the model's record read back from `record` in the run folder (through
/// `root`: size-capped, no links). Leaves the report as it is when either
/// is missing or the address is in no image the host built.
pub fn symbolise_under_model(crash: &mut CrashReport, root: &Root, record: &Path, modules: &[ModuleSymbols]) {
    let Some(pc) = crash
        .registers
        .iter()
        .find(|(r, _)| r == "rip")
        .and_then(|(_, v)| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
    else {
        return;
    };
    let Ok(bytes) = root.read(record, IMAGES_MAX, "the ABI model's image record") else { return };
    let images = parse_images(&String::from_utf8_lossy(&bytes));
    if let Some((location, line)) = symbolise(pc, &images, modules) {
        crash.location = Some(location);
        if let Some(line) = line {
            crash.source_line = Some(line.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker() -> Marker {
        Marker("@@0123456789abcdef0123456789abcdef".into())
    }

    fn sources() -> Sources {
        Sources::from_files(vec![("src/crash.asm".into(), "1\n2\n3\n4\n5\n6\n    mov rax, [rax]   ; boom\n".into())])
    }

    #[test]
    fn reads_gdbs_answers() {
        let gdb = "Program received signal SIGSEGV, Segmentation fault.\n0x00007ffff7fb6012 in boom ()\n@@0123456789abcdef0123456789abcdef registers\n\
                   rip            0x7ffff7fb6012      0x7ffff7fb6012 <boom+18>\nrax            0x0                 0\n\
                   @@0123456789abcdef0123456789abcdef instruction\n=> 0x7ffff7fb6012 <boom+18>:\tmov    rax,QWORD PTR [rax]\n\
                   @@0123456789abcdef0123456789abcdef symbol\nboom + 18 in section .text of /job/linux-x86_64/smoke/site/crash.abi3.so\n\
                   @@0123456789abcdef0123456789abcdef line\nLine 7 of \"src/crash.asm\" starts at address 0x7ffff7fb6012 <boom+18> and ends at 0x7ffff7fb6015.\n\
                   @@0123456789abcdef0123456789abcdef end\n";
        let output = "stuff\nFatal Python error: Segmentation fault\n\nCurrent thread 0x1 (most recent call first):\n  File \"t.py\", line 3 in test_boom\n\nExtension modules: x\n";
        let crash = report("SIGSEGV", output, Some((gdb, &marker())), &sources());
        assert_eq!(crash.registers[0], ("rip".to_string(), "0x7ffff7fb6012".to_string()));
        assert_eq!(crash.registers[1], ("rax".to_string(), "0x0".to_string()));
        assert_eq!(crash.instruction.as_deref(), Some("0x7ffff7fb6012 <boom+18>: mov rax,QWORD PTR [rax]"));
        assert_eq!(crash.location.as_deref(), Some("boom + 18 in crash.abi3.so"));
        assert_eq!(crash.source_line.as_deref(), Some("src/crash.asm:7: mov rax, [rax]   ; boom"));
        assert!(crash.python_traceback.unwrap().ends_with("line 3 in test_boom"));
    }

    #[test]
    fn sections_without_the_marker_are_ignored() {
        // What the program under test can print: sections without the secret marker.
        let forged = "@@registers\nrip 0x4141414141414141 0\n@@instruction\n=> 0x41 <forged>:\tnop\n@@symbol\n\
                      forged + 0 in section .text of /x/forged.so\n@@line\nLine 1 of \"/proc/self/environ\" starts at address 0x41\n@@end\n\
                      @@0123456789abcdef registers\nrip 0x42 0\n";
        let crash = report("SIGSEGV", "", Some((forged, &marker())), &sources());
        assert_eq!(crash.registers, Vec::<(String, String)>::new());
        assert_eq!((crash.instruction, crash.location, crash.source_line), (None, None, None));
    }

    #[test]
    fn a_line_table_naming_a_file_outside_the_project_quotes_nothing() {
        for file in ["/proc/self/environ", "../../../../etc/passwd", "src/../src/crash.asm", "/work/src/crash.asm"] {
            let gdb = format!(
                "@@0123456789abcdef0123456789abcdef line\nLine 7 of \"{file}\" starts at address 0x41\n@@0123456789abcdef0123456789abcdef end\n"
            );
            let crash = report("SIGSEGV", "", Some((&gdb, &marker())), &sources());
            assert_eq!(crash.source_line, None, "{file}");
        }
    }

    #[test]
    fn the_marker_is_in_the_command_file_and_not_on_the_command_line() {
        let marker = Marker::new().unwrap();
        assert_ne!(marker, Marker::new().unwrap());
        let script = script_path(Path::new("/job")).unwrap();
        let args = gdb_args(&script, Path::new("/env/bin/python"), &["-m".into(), "pytest".into()]);
        assert!(args.iter().all(|a| !a.contains(&marker.0[2..])), "{args:?}");
        let commands = gdb_script(&marker, &script, "/job/site");
        assert!(commands.starts_with("python\nimport ctypes, os\n"), "{commands}");
        assert!(commands.contains(&format!("os.unlink(\"{}\")\nend\n", script.display())), "{commands}");
        // The program starts only after gdb protected itself.
        assert!(commands.find("prctl(4, 0, 0, 0, 0)").unwrap() < commands.find("\nrun\n").unwrap());
        assert!(commands.contains("(\"line\", \"info line *$pc\")"), "{commands}");
        assert!(commands.contains(&format!("gdb.write(\"{} \" + name", marker.0)), "{commands}");
        // Every answer is collected, then the others killed, then printed.
        let (collect, kill, print) = (
            commands.find("to_string=True").unwrap(),
            commands.find("os.kill(-1").unwrap(),
            commands.find("gdb.write(").unwrap(),
        );
        assert!(collect < kill && kill < print, "{commands}");
        assert!(args.windows(2).any(|w| w == ["-eiex", "set python ignore-environment on"]), "{args:?}");
        assert_eq!(marker.scrub(&format!("{} line\n", marker.0)), "@@ line\n");
    }
    #[test]
    fn an_image_record_yields_only_well_formed_foreign_lines() {
        let record = "windows-x86_64 7f0012340000 5000 crashy.pyd\n\
                      linux-x86_64 1000 1000 native.so\n\
                      macos-x86_64 zz 1000 bad.so\n\
                      macos-x86_64 1000 0 empty.so\n\
                      macos-x86_64 ffffffffffffffff 10 wraps.so\n\
                      windows-x86_64 1000 1000 /etc/passwd extra\n\
                      macos-x86_64 2000 1000 ../../etc/passwd\n";
        let images = parse_images(record);
        let got: Vec<(Target, u64, u64, &str)> =
            images.iter().map(|i| (i.target, i.base, i.size, i.name.as_str())).collect();
        assert_eq!(
            got,
            [
                (Target::Windows, 0x7f0012340000, 0x5000, "crashy.pyd"),
                (Target::Macos, 0x2000, 0x1000, "../../etc/passwd")
            ]
        );
    }

    #[test]
    fn a_forged_image_name_matches_no_module_and_symbolises_nothing() {
        let modules = [ModuleSymbols {
            name: "crashy.pyd".into(),
            target: Target::Windows,
            link_base: 0x180000000,
            symbols: vec![(0x180001000, "boom".into())],
            lines: None,
        }];
        let image = |name: &str, target| MappedImage { target, base: 0x7f0000000000, size: 0x3000, name: name.into() };
        let pc = 0x7f0000001002;
        assert_eq!(
            symbolise(pc, &[image("crashy.pyd", Target::Windows)], &modules),
            Some(("boom + 2 in crashy.pyd".to_string(), None))
        );
        for forged in [image("../../etc/passwd", Target::Windows), image("crashy.pyd", Target::Macos)] {
            assert_eq!(symbolise(pc, &[forged], &modules), None);
        }
        assert_eq!(symbolise(0x7f0000003000, &[image("crashy.pyd", Target::Windows)], &modules), None);
    }
}
