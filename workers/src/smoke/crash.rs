//! Explaining a crash: the signal, Python's faulthandler traceback, and —
//! with gdb — the faulting instruction, symbol + offset, registers and the
//! `.asm` line when the module carries DWARF.

use std::path::Path;

use crate::report::CrashReport;

/// Registers shown in a crash report, in this order.
const REGISTERS: [&str; 18] = [
    "rip", "rsp", "rbp", "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14",
    "r15", "eflags",
];

/// gdb's arguments that run `program args...` and describe where it stops.
pub fn gdb_args(program: &Path, args: &[String]) -> Vec<String> {
    let mut gdb: Vec<String> = ["-nx", "-batch", "-q"].map(String::from).to_vec();
    for command in [
        "set pagination off",
        "set confirm off",
        "set debuginfod enabled off",
        "set disassembly-flavor intel",
        "set startup-with-shell off",
        "run",
        "printf \"@@registers\\n\"",
        &format!("info registers {}", REGISTERS.join(" ")),
        "printf \"@@instruction\\n\"",
        "x/i $pc",
        "printf \"@@symbol\\n\"",
        "info symbol $pc",
        "printf \"@@line\\n\"",
        "info line *$pc",
        "printf \"@@end\\n\"",
    ] {
        gdb.extend(["-ex".to_string(), command.to_string()]);
    }
    gdb.push("--args".into());
    gdb.push(program.display().to_string());
    gdb.extend(args.iter().cloned());
    gdb
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

/// Builds the report from the signal, the run's output and gdb's output;
/// `project_root` resolves the `.asm` file named by the line table.
pub fn report(signal: &str, output: &str, gdb_output: Option<&str>, project_root: &Path) -> CrashReport {
    let mut crash = CrashReport {
        signal: signal.to_string(),
        python_traceback: python_traceback(output),
        instruction: None,
        location: None,
        source_line: None,
        registers: Vec::new(),
    };
    let Some(gdb) = gdb_output else { return crash };
    let section = |name: &str| -> Vec<&str> {
        let marker = format!("@@{name}");
        gdb.lines().skip_while(|l| l.trim() != marker).skip(1).take_while(|l| !l.starts_with("@@")).collect()
    };
    for line in section("registers") {
        let mut words = line.split_whitespace();
        if let (Some(name), Some(value)) = (words.next(), words.next()) {
            if REGISTERS.contains(&name) {
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
    // "Line 25 of \"src/crash.asm\" starts at address ..."
    crash.source_line = section("line").into_iter().find_map(|l| {
        let rest = l.trim().strip_prefix("Line ")?;
        let (number, rest) = rest.split_once(" of \"")?;
        let (file, _) = rest.split_once('"')?;
        let number: usize = number.parse().ok()?;
        let text = std::fs::read_to_string(project_root.join(file))
            .ok()
            .and_then(|t| t.lines().nth(number.saturating_sub(1)).map(|s| s.trim().to_string()))
            .unwrap_or_default();
        Some(format!("{file}:{number}: {text}").trim_end().trim_end_matches(':').to_string())
    });
    crash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_gdbs_answers() {
        let gdb = "Program received signal SIGSEGV, Segmentation fault.\n0x00007ffff7fb6012 in boom ()\n@@registers\n\
                   rip            0x7ffff7fb6012      0x7ffff7fb6012 <boom+18>\nrax            0x0                 0\n\
                   @@instruction\n=> 0x7ffff7fb6012 <boom+18>:\tmov    rax,QWORD PTR [rax]\n\
                   @@symbol\nboom + 18 in section .text of /job/linux-x86_64/smoke/site/crash.abi3.so\n\
                   @@line\nLine 7 of \"src/crash.asm\" starts at address 0x7ffff7fb6012 <boom+18> and ends at 0x7ffff7fb6015.\n@@end\n";
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/crash.asm"), "1\n2\n3\n4\n5\n6\n    mov rax, [rax]   ; boom\n").unwrap();
        let output = "stuff\nFatal Python error: Segmentation fault\n\nCurrent thread 0x1 (most recent call first):\n  File \"t.py\", line 3 in test_boom\n\nExtension modules: x\n";
        let crash = report("SIGSEGV", output, Some(gdb), dir.path());
        assert_eq!(crash.registers[0], ("rip".to_string(), "0x7ffff7fb6012".to_string()));
        assert_eq!(crash.registers[1], ("rax".to_string(), "0x0".to_string()));
        assert_eq!(crash.instruction.as_deref(), Some("0x7ffff7fb6012 <boom+18>: mov rax,QWORD PTR [rax]"));
        assert_eq!(crash.location.as_deref(), Some("boom + 18 in crash.abi3.so"));
        assert_eq!(crash.source_line.as_deref(), Some("src/crash.asm:7: mov rax, [rax]   ; boom"));
        assert!(crash.python_traceback.unwrap().ends_with("line 3 in test_boom"));
    }
}
