//! `wheelwright`: parse the command line, set up logging, run the command.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Inside the sandbox this binary is the Landlock exec helper.
    if std::env::args_os().nth(1).is_some_and(|a| a == wheelwright::cli::SANDBOX_EXEC) {
        let code = wheelwright_workers::sandbox::landlock::exec_main(std::env::args_os().skip(2));
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let cli = wheelwright::cli::Cli::parse();
    if cli.default_log_filter() != "info" {
        // One-shot commands end quietly when their output is piped into
        // `head`; the daemon keeps Rust's default (EPIPE instead of a signal).
        // SAFETY: called before any other thread exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WHEELWRIGHT_LOG")
                .unwrap_or_else(|_| cli.default_log_filter().into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    // Once, before any thread exists (a session keyring belongs to a thread's
    // credentials): every step inherits an empty keyring, not the login's or
    // the service manager's, and the helper need not make one per step.
    if let Err(e) = wheelwright_workers::sandbox::seccomp::hold_an_empty_session_keyring() {
        tracing::warn!("{e}; each sandboxed step makes its own");
    }
    wheelwright::cli::run(cli)
}
