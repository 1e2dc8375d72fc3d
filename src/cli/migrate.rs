//! `wheelwright migrate`: moves an install's records from SQLite to
//! PostgreSQL and its objects from the local store to S3 (see
//! [`crate::migrate`]); safe to run again.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::db::DatabaseUrl;
use crate::store::StoreConfig;

/// Arguments of `wheelwright migrate`.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// The install's database: `sqlite:PATH` (the daemon keeps it at
    /// `<data dir>/wheelwright.db`).
    #[arg(long)]
    from: String,
    /// The PostgreSQL database to copy the records into: `postgres://user@host/db`.
    #[arg(long)]
    to: Option<String>,
    /// The S3 store to copy the artifacts and source trees into:
    /// `s3://bucket/prefix`, with the endpoint and credentials in the
    /// `AWS_*` variables.
    #[arg(long)]
    to_store: Option<String>,
    /// The install's data directory, where its local store is [default:
    /// the directory of the `--from` database].
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub fn run(args: MigrateArgs) -> ExitCode {
    let from: PathBuf = match DatabaseUrl::parse(&args.from) {
        Ok(DatabaseUrl::Sqlite(Some(path))) => path,
        Ok(_) => return fail("--from must be an SQLite database (sqlite:PATH)"),
        Err(e) => return fail(&e),
    };
    let to = match args.to.as_deref().map(DatabaseUrl::parse) {
        None => None,
        Some(Ok(DatabaseUrl::Postgres(url))) => Some(url),
        Some(Ok(_)) => return fail("--to must be a PostgreSQL database (postgres://…)"),
        Some(Err(e)) => return fail(&e),
    };
    let to_store = match args.to_store.map(|url| StoreConfig::resolve(Some(url), None, None)) {
        None => None,
        Some(Ok(config @ StoreConfig::S3(_))) => Some(config),
        Some(Ok(_)) => return fail("--to-store must be an S3 store (s3://bucket/prefix)"),
        Some(Err(e)) => return fail(&e),
    };
    if to.is_none() && to_store.is_none() {
        return fail("nothing to do: give --to (the records), --to-store (the objects) or both");
    }
    let data_dir = args.data_dir.unwrap_or_else(|| from.parent().map(PathBuf::from).unwrap_or_default());
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => return fail(&format!("cannot start: {e}")),
    };
    let moved = runtime.block_on(async {
        let store = match &to_store {
            Some(config) => Some(crate::store::open(config, &data_dir).map_err(|e| format!("{e:#}"))?),
            None => None,
        };
        let plan =
            crate::migrate::Plan { from: from.clone(), data_dir: data_dir.clone(), to: to.clone(), to_store: store };
        crate::migrate::run(plan).await.map_err(|e| e.to_string())
    });
    let moved = match moved {
        Ok(moved) => moved,
        Err(e) => return fail(&e),
    };
    if let Some(objects) = &moved.objects {
        println!(
            "objects from {}: {} named, {} copied ({} bytes), {} already there and equal; {} source trees",
            data_dir.display(),
            objects.objects,
            objects.copied,
            objects.bytes,
            objects.already_there,
            objects.sources
        );
        for id in &objects.sources_missing {
            println!("  warning: build {id} has no source tree in {}: it cannot be rebuilt", data_dir.display());
        }
    }
    if let Some(to) = &to {
        println!("records from {} into {}:", from.display(), DatabaseUrl::Postgres(to.clone()));
        for t in &moved.tables {
            println!(
                "  {:<18} {:>7} rows: {:>7} copied, {:>7} already there and equal",
                t.table, t.rows, t.copied, t.already_there
            );
        }
    }
    println!("done: everything copied was read back and checked");
    ExitCode::SUCCESS
}

fn fail(why: &str) -> ExitCode {
    eprintln!("error: {why}");
    ExitCode::FAILURE
}
