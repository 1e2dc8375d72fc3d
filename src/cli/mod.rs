//! The command line: `build` and `doctor`.

mod build;
mod doctor;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Build CPython extension modules written in x86-64 assembly.
#[derive(Debug, Parser)]
#[command(name = "wheelwright", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build wheels for a project directory.
    Build(build::BuildArgs),
    /// Show the tools and interpreters found, and what is missing.
    Doctor(doctor::DoctorArgs),
}

/// Interpreter selection shared by the commands.
#[derive(Debug, Clone, clap::Args)]
pub struct PythonArgs {
    /// Interpreters for the smoke test (repeat or comma-separate).
    #[arg(
        long = "python",
        env = "WHEELWRIGHT_PYTHONS",
        value_delimiter = ',',
        default_value = "python3"
    )]
    pub pythons: Vec<PathBuf>,
}

/// Runs the parsed command and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Build(args) => build::run(args),
        Command::Doctor(args) => doctor::run(args),
    }
}
