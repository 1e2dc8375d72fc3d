//! `wheelwright doctor`: every tool with its version and path, what is missing
//! and which package provides it, and the interpreters for smoke tests.

use std::process::ExitCode;

use wheelwright_workers::smoke::Interpreter;
use wheelwright_workers::target::Target;
use wheelwright_workers::toolchain::{self, Tool, Toolchain};

use super::PythonArgs;

/// Arguments of `wheelwright doctor`.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    python: PythonArgs,
}

pub fn run(args: DoctorArgs) -> ExitCode {
    let chain = Toolchain::discover().with_versions();
    println!("tools:");
    for tool in Tool::ALL {
        match chain.found.iter().find(|f| f.tool == tool) {
            Some(found) => println!(
                "  ok       {:<13} {}  ({})",
                tool.name(),
                found.version,
                found.path.display()
            ),
            None => println!(
                "  MISSING  {:<13} {}: install the Debian package {}",
                tool.name(),
                tool.purpose(),
                tool.package()
            ),
        }
    }
    println!("targets:");
    let mut all_buildable = true;
    for target in Target::ALL {
        let missing: Vec<&str> = toolchain::required_for(target)
            .iter()
            .filter(|t| chain.path(**t).is_none())
            .map(|t| t.name())
            .collect();
        if missing.is_empty() {
            println!("  ok       {target}");
        } else {
            all_buildable = false;
            println!("  MISSING  {target}: needs {}", missing.join(", "));
        }
    }
    println!("interpreters:");
    for python in &args.python.pythons {
        match Interpreter::probe(python) {
            Ok(i) => println!("  ok       {:<13} {}", i.label(), i.executable.display()),
            Err(e) => println!("  MISSING  {e}"),
        }
    }
    if all_buildable {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
