//! The `build_logs` table on PostgreSQL: the only module that writes it.

use sqlx::{PgConnection, Row};

use crate::db::DbResult;

/// Appends lines numbered from `first_seq`, in multi-row inserts (well
/// within PostgreSQL's 65535 bound parameters per statement).
pub async fn append(conn: &mut PgConnection, id: &str, first_seq: i64, lines: &[String]) -> DbResult<()> {
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
pub async fn next_seq(conn: &mut PgConnection, id: &str) -> DbResult<i64> {
    Ok(sqlx::query_scalar("SELECT COALESCE(MAX(seq) + 1, 0) FROM build_logs WHERE build_id = $1")
        .bind(id)
        .fetch_one(conn)
        .await?)
}

/// Lines after `after` (exclusive; -1 for all).
pub async fn after(conn: &mut PgConnection, id: &str, after: i64) -> DbResult<Vec<(i64, String)>> {
    let rows = sqlx::query("SELECT seq, line FROM build_logs WHERE build_id = $1 AND seq > $2 ORDER BY seq")
        .bind(id)
        .bind(after)
        .fetch_all(conn)
        .await?;
    Ok(rows.iter().map(|r| (r.get("seq"), r.get("line"))).collect())
}
