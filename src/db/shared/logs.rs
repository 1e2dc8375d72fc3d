//! The `build_logs` table: the only module that writes it.
//!
//! Written once for both backends: `sqlite/mod.rs` and `postgres/mod.rs` each
//! compile this file as their own module (`#[path]`), with `Conn` and `DbRow`
//! their dialect's connection and row, and parameters written `$1`, `$2`, …
//! (which PostgreSQL requires and sqlx's SQLite driver binds by number). The dialects
//! agree on every statement here.

use sqlx::Row;

use super::Conn;

use crate::db::DbResult;

/// Appends lines numbered from `first_seq`, in multi-row inserts within the
/// 999 bound parameters old SQLite allows (PostgreSQL allows 65535).
pub async fn append(conn: &mut Conn, id: &str, first_seq: i64, lines: &[String]) -> DbResult<()> {
    const ROWS_PER_STATEMENT: usize = 300;
    for (chunk_index, chunk) in lines.chunks(ROWS_PER_STATEMENT).enumerate() {
        let first = first_seq + (chunk_index * ROWS_PER_STATEMENT) as i64;
        let mut insert = sqlx::QueryBuilder::new("INSERT INTO build_logs (build_id, seq, line) ");
        insert.push_values(chunk.iter().enumerate(), |mut row, (i, line)| {
            row.push_bind(id).push_bind(first + i as i64).push_bind(line);
        });
        insert.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// The next free sequence number of a build's log.
pub async fn next_seq(conn: &mut Conn, id: &str) -> DbResult<i64> {
    Ok(sqlx::query_scalar("SELECT COALESCE(MAX(seq) + 1, 0) FROM build_logs WHERE build_id = $1")
        .bind(id)
        .fetch_one(conn)
        .await?)
}

/// Lines after `after` (exclusive; -1 for all).
pub async fn after(conn: &mut Conn, id: &str, after: i64) -> DbResult<Vec<(i64, String)>> {
    let rows = sqlx::query("SELECT seq, line FROM build_logs WHERE build_id = $1 AND seq > $2 ORDER BY seq")
        .bind(id)
        .bind(after)
        .fetch_all(conn)
        .await?;
    Ok(rows.iter().map(|r| (r.get("seq"), r.get("line"))).collect())
}
