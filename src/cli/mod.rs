//! The command line: `build` and `doctor`.

mod build;
mod doctor;
mod migrate;
mod serve;
mod submit;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use wheelwright_workers::sandbox::{Helper, Limits, Sandbox, SandboxError};
use wheelwright_workers::smoke::Interpreter;

/// Build CPython extension modules written in x86-64 assembly.
#[derive(Debug, Parser)]
#[command(name = "wheelwright", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the build service: HTTP API, package index and workers.
    Serve(Box<crate::config::ServeArgs>),
    /// Build wheels for a project directory.
    Build(build::BuildArgs),
    /// Assemble and run the static ABI check only: findings in the form
    /// editors parse, exit status 1 on an error (for an editor loop or a
    /// pre-commit hook).
    Check(build::BuildArgs),
    /// Upload a project to a wheelwright server, follow the build, download the wheels.
    Submit(submit::SubmitArgs),
    /// Show the tools, sandbox and interpreters found, and what is missing.
    Doctor(doctor::DoctorArgs),
    /// Copy an install's records from SQLite into PostgreSQL, checking every
    /// row; safe to run again.
    Migrate(migrate::MigrateArgs),
}

/// Interpreter selection shared by the commands.
#[derive(Debug, Clone, clap::Args)]
pub struct PythonArgs {
    /// Interpreters for the smoke test (repeat or comma-separate); default:
    /// every CPython 3.8 or newer found on this host.
    #[arg(long = "python", env = "WHEELWRIGHT_PYTHONS", value_delimiter = ',')]
    pub pythons: Vec<PathBuf>,
}

impl PythonArgs {
    /// The interpreters to use, with a warning for each unusable one.
    pub fn interpreters(&self) -> Vec<Interpreter> {
        if self.pythons.is_empty() {
            return Interpreter::discover();
        }
        let mut found = Vec::new();
        for python in &self.pythons {
            match Interpreter::probe(python) {
                Ok(i) => found.push(i),
                Err(e) => eprintln!("warning: {e}; not used for the smoke test"),
            }
        }
        found
    }
}

pub use crate::config::SandboxKind;

/// The hidden first argument that makes this binary the Landlock exec helper.
pub const SANDBOX_EXEC: &str = "__sandbox-exec";

/// The sandbox for this process; the Landlock helper is this binary itself.
pub fn make_sandbox(kind: SandboxKind, limits: Limits) -> Result<Sandbox, SandboxError> {
    match kind {
        SandboxKind::None => Ok(Sandbox::none(limits)),
        SandboxKind::Bwrap => {
            let helper =
                std::env::current_exe().ok().map(|program| Helper { program, args: vec![SANDBOX_EXEC.to_string()] });
            Sandbox::bubblewrap(limits, helper)
        }
    }
}

impl Cli {
    /// `info` for the daemon, `warn` for the one-shot commands (which print their own progress).
    pub fn default_log_filter(&self) -> &'static str {
        match self.command {
            Command::Serve(_) => "info",
            _ => "warn",
        }
    }
}

/// Runs the parsed command and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Build(args) => build::run(args, false),
        Command::Check(args) => build::run(args, true),
        Command::Submit(args) => submit::run(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Migrate(args) => migrate::run(args),
    }
}
