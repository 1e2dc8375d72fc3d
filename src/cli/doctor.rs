//! `wheelwright doctor`: every tool with its version and path, what is missing
//! and which package provides it, the sandbox's layers and the limits of each
//! build (the defaults: `[limits]` of the configuration changes them), and
//! the interpreters for smoke tests.

use std::process::ExitCode;

use wheelwright_workers::platform::Target;
use wheelwright_workers::sandbox::Limits;
use wheelwright_workers::toolchain::{self, Tool, Toolchain};

use super::{make_sandbox, PythonArgs, SandboxKind};

/// Arguments of `wheelwright doctor`.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    python: PythonArgs,
}

pub fn run(args: DoctorArgs) -> ExitCode {
    let chain = Toolchain::discover().with_versions();
    let mut healthy = true;
    println!("tools:");
    for tool in Tool::ALL {
        match chain.found.iter().find(|f| f.tool == tool) {
            Some(found) => println!("  ok       {:<13} {}  ({})", tool.name(), found.version, found.path.display()),
            None => println!(
                "  MISSING  {:<13} {}: install the Debian package {}",
                tool.name(),
                tool.purpose(),
                tool.package()
            ),
        }
    }
    println!("targets:");
    for target in Target::ALL {
        let missing: Vec<&str> =
            toolchain::required_for(target).iter().filter(|t| chain.path(**t).is_none()).map(|t| t.name()).collect();
        if missing.is_empty() {
            println!("  ok       {target}");
        } else {
            healthy = false;
            println!("  MISSING  {target}: needs {}", missing.join(", "));
        }
    }
    println!("sandbox:");
    match make_sandbox(SandboxKind::Bwrap, Limits::default()) {
        Ok(sandbox) => {
            println!("  ok       {}", sandbox.describe_layers());
            println!("  ok       {}", sandbox.describe_build_limits());
        }
        Err(e) => {
            healthy = false;
            println!("  MISSING  {e}");
        }
    }
    println!("interpreters:");
    let interpreters = args.python.interpreters();
    if interpreters.is_empty() {
        println!("  MISSING  no CPython 3.8 or newer: the smoke test cannot run");
    }
    for i in interpreters {
        println!("  ok       {:<13} {}", i.label(), i.executable.display());
    }
    if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
