//! `wheelwright migrate`: moves an install's records from SQLite to
//! PostgreSQL (see [`crate::migrate`]); safe to run again.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::db::DatabaseUrl;

/// Arguments of `wheelwright migrate`.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// The install's database: `sqlite:PATH` (the daemon keeps it at
    /// `<data dir>/wheelwright.db`).
    #[arg(long)]
    from: String,
    /// The database to fill: `postgres://user@host/db`.
    #[arg(long)]
    to: String,
}

pub fn run(args: MigrateArgs) -> ExitCode {
    let from: PathBuf = match DatabaseUrl::parse(&args.from) {
        Ok(DatabaseUrl::Sqlite(Some(path))) => path,
        Ok(_) => return fail("--from must be an SQLite database (sqlite:PATH)"),
        Err(e) => return fail(&e),
    };
    let to = match DatabaseUrl::parse(&args.to) {
        Ok(DatabaseUrl::Postgres(url)) => url,
        Ok(_) => return fail("--to must be a PostgreSQL database (postgres://…)"),
        Err(e) => return fail(&e),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => return fail(&format!("cannot start: {e}")),
    };
    let shown = DatabaseUrl::Postgres(to.clone());
    println!("copying {} into {shown}", from.display());
    match runtime.block_on(crate::migrate::copy_records(&from, &to)) {
        Ok(tables) => {
            for t in &tables {
                println!(
                    "  {:<18} {:>7} rows: {:>7} copied, {:>7} already there and equal",
                    t.table, t.rows, t.copied, t.already_there
                );
            }
            println!("every row of the source is in the destination, equal");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}

fn fail(why: &str) -> ExitCode {
    eprintln!("error: {why}");
    ExitCode::FAILURE
}
