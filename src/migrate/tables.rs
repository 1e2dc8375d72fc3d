//! Row copy from an SQLite install to a PostgreSQL database: every table of
//! the schema, in an order its foreign keys accept, page by page; a row the
//! destination already holds is left alone when it is equal and reported as
//! a conflict when it is not, so a run can be repeated (after an
//! interruption, say) and never overwrites anything.

use std::collections::HashMap;

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, PgPool, Row, SqlitePool, TypeInfo, ValueRef};

use super::MigrateError;

/// Each table, with its primary key, parents before children. A table of
/// the source that is not here stops the migration: nothing is skipped
/// silently when the schema grows.
pub const TABLES: &[(&str, &[&str])] = &[
    ("builds", &["id"]),
    ("jobs", &["id"]),
    ("artifacts", &["build_id", "filename"]),
    ("build_logs", &["build_id", "seq"]),
    ("github_deliveries", &["delivery_id"]),
    ("github_pushes", &["delivery_id"]),
    ("published_files", &["filename"]),
    ("project_owners", &["normalized_name"]),
];

/// Rows read and written per statement.
const PAGE: i64 = 500;

/// What happened to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopy {
    /// The table.
    pub table: &'static str,
    /// Rows in the source.
    pub rows: u64,
    /// Rows this run wrote.
    pub copied: u64,
    /// Rows the destination already held, equal to the source's.
    pub already_there: u64,
}

/// One stored value, in a form both databases compare equal.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

impl Value {
    fn show(&self) -> String {
        match self {
            Value::Null => "NULL".into(),
            Value::Int(i) => i.to_string(),
            Value::Real(r) => r.to_string(),
            Value::Text(t) if t.len() > 60 => format!("{:?}…", &t[..t.floor_char_boundary(60)]),
            Value::Text(t) => format!("{t:?}"),
        }
    }
}

/// The PostgreSQL type of a column, as far as the copy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PgType {
    BigInt,
    Boolean,
    Double,
    Text,
}

/// Checks the two schemas hold the same tables and columns.
pub async fn check_schema(from: &SqlitePool, to: &PgPool) -> Result<(), MigrateError> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx_%'",
    )
    .fetch_all(from)
    .await?;
    for table in &tables {
        if !TABLES.iter().any(|(t, _)| t == table) {
            return Err(MigrateError::Schema(format!("the source has a table `{table}` this version cannot copy")));
        }
    }
    for (table, _) in TABLES {
        let source = sqlite_columns(from, table).await?;
        let dest = pg_columns(to, table).await?;
        for column in &source {
            if !dest.contains_key(column) {
                return Err(MigrateError::Schema(format!("`{table}.{column}` is missing in the destination")));
            }
        }
        if let Some(extra) = dest.keys().find(|c| !source.contains(c)) {
            return Err(MigrateError::Schema(format!("`{table}.{extra}` is missing in the source")));
        }
    }
    Ok(())
}

/// Copies every table; the first conflict stops the run (what was copied
/// before it stays: every row is whole, and the run can be repeated).
pub async fn copy_all(from: &SqlitePool, to: &PgPool) -> Result<Vec<TableCopy>, MigrateError> {
    let mut report = Vec::new();
    for (table, key) in TABLES {
        report.push(copy_table(from, to, table, key).await?);
    }
    Ok(report)
}

async fn copy_table(
    from: &SqlitePool,
    to: &PgPool,
    table: &'static str,
    key: &[&str],
) -> Result<TableCopy, MigrateError> {
    let columns = sqlite_columns(from, table).await?;
    let types = pg_columns(to, table).await?;
    let key_at: Vec<usize> = key.iter().map(|k| columns.iter().position(|c| c == k).expect("key column")).collect();
    let list = columns.join(", ");
    // A cached build names the build it reused, which may have been
    // recorded in the same millisecond: builds go in first without that
    // reference, which is set once every build is there.
    let deferred = (table == "builds").then(|| columns.iter().position(|c| c == "cached_from")).flatten();
    let mut copy = TableCopy { table, rows: 0, copied: 0, already_there: 0 };
    let mut last_rowid = i64::MIN;
    let mut references = Vec::new();
    loop {
        let select =
            format!("SELECT rowid AS ww_rowid, {list} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT {PAGE}");
        let page = sqlx::query(AssertSqlSafe(select)).bind(last_rowid).fetch_all(from).await?;
        let Some(last) = page.last() else { break };
        last_rowid = last.try_get("ww_rowid")?;
        let mut rows = Vec::with_capacity(page.len());
        for row in &page {
            rows.push(sqlite_values(row, &columns, table)?);
        }
        copy.rows += rows.len() as u64;
        let existing = existing_rows(to, table, &columns, &types, &key_at, &rows).await?;
        let mut missing = Vec::new();
        for row in rows {
            let id: Vec<Value> = key_at.iter().map(|&i| row[i].clone()).collect();
            match existing.get(&key_text(&id)) {
                Some(there) if *there == row => copy.already_there += 1,
                Some(there) => return Err(conflict(table, &columns, &id, &row, there)),
                None => missing.push(row),
            }
        }
        if let Some(at) = deferred {
            for row in &mut missing {
                if row[at] != Value::Null {
                    references.push((row[key_at[0]].clone(), std::mem::replace(&mut row[at], Value::Null)));
                }
            }
        }
        copy.copied += insert(to, table, &columns, &types, &missing).await?;
    }
    if let Some(at) = deferred {
        for (id, cached_from) in references {
            let set = format!("UPDATE builds SET {} = $1 WHERE id = $2 AND {0} IS NULL", columns[at]);
            let query = bind(sqlx::query(AssertSqlSafe(set)), &cached_from, PgType::Text)?;
            bind(query, &id, PgType::Text)?.execute(to).await?;
        }
    }
    Ok(copy)
}

/// The destination's rows with the keys of `rows`, by key.
async fn existing_rows(
    to: &PgPool,
    table: &str,
    columns: &[String],
    types: &HashMap<String, PgType>,
    key_at: &[usize],
    rows: &[Vec<Value>],
) -> Result<HashMap<String, Vec<Value>>, MigrateError> {
    if rows.is_empty() {
        return Ok(HashMap::new());
    }
    let key_columns: Vec<&str> = key_at.iter().map(|&i| columns[i].as_str()).collect();
    let select = format!(
        "SELECT {} FROM {table} WHERE ({}) IN ({})",
        columns.join(", "),
        key_columns.join(", "),
        tuples(rows.len(), key_at.len())
    );
    let mut query = sqlx::query(AssertSqlSafe(select));
    for row in rows {
        for &i in key_at {
            query = bind(query, &row[i], types[&columns[i]])?;
        }
    }
    let mut found = HashMap::new();
    for row in query.fetch_all(to).await? {
        let values = pg_values(&row, columns, types, table)?;
        let id: Vec<Value> = key_at.iter().map(|&i| values[i].clone()).collect();
        found.insert(key_text(&id), values);
    }
    Ok(found)
}

async fn insert(
    to: &PgPool,
    table: &str,
    columns: &[String],
    types: &HashMap<String, PgType>,
    rows: &[Vec<Value>],
) -> Result<u64, MigrateError> {
    if rows.is_empty() {
        return Ok(0);
    }
    // Rows checked missing a moment ago: a conflict now means someone else
    // writes the destination, which DO NOTHING leaves to the check of the
    // next run rather than overwriting.
    let sql = format!(
        "INSERT INTO {table} ({}) VALUES {} ON CONFLICT DO NOTHING",
        columns.join(", "),
        tuples(rows.len(), columns.len())
    );
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for row in rows {
        for (value, column) in row.iter().zip(columns) {
            query = bind(query, value, types[column])?;
        }
    }
    Ok(query.execute(to).await?.rows_affected())
}

/// `($1, $2), ($3, $4)` for `rows` tuples of `width` parameters.
fn tuples(rows: usize, width: usize) -> String {
    let tuple = |row: usize| {
        let numbers: Vec<String> = (1..=width).map(|i| format!("${}", row * width + i)).collect();
        format!("({})", numbers.join(", "))
    };
    (0..rows).map(tuple).collect::<Vec<_>>().join(", ")
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

fn bind<'q>(query: PgQuery<'q>, value: &Value, kind: PgType) -> Result<PgQuery<'q>, MigrateError> {
    let mismatch = || MigrateError::Schema(format!("a value {} does not fit a {kind:?} column", value.show()));
    Ok(match (kind, value) {
        (PgType::BigInt, Value::Null) => query.bind(None::<i64>),
        (PgType::BigInt, Value::Int(i)) => query.bind(*i),
        (PgType::Boolean, Value::Null) => query.bind(None::<bool>),
        (PgType::Boolean, Value::Int(i @ (0 | 1))) => query.bind(*i == 1),
        (PgType::Double, Value::Null) => query.bind(None::<f64>),
        (PgType::Double, Value::Real(r)) => query.bind(*r),
        (PgType::Double, Value::Int(i)) => query.bind(*i as f64),
        (PgType::Text, Value::Null) => query.bind(None::<String>),
        (PgType::Text, Value::Text(t)) => query.bind(t.clone()),
        _ => return Err(mismatch()),
    })
}

fn sqlite_values(row: &SqliteRow, columns: &[String], table: &str) -> Result<Vec<Value>, MigrateError> {
    let mut values = Vec::with_capacity(columns.len());
    for column in columns {
        let raw = row.try_get_raw(column.as_str())?;
        let value = if raw.is_null() {
            Value::Null
        } else {
            match raw.type_info().name() {
                "INTEGER" | "BOOLEAN" => Value::Int(row.try_get_unchecked(column.as_str())?),
                "REAL" => Value::Real(row.try_get_unchecked(column.as_str())?),
                "TEXT" => Value::Text(row.try_get_unchecked(column.as_str())?),
                other => {
                    return Err(MigrateError::Schema(format!(
                        "`{table}.{column}` holds a {other} value, which no column takes"
                    )))
                }
            }
        };
        values.push(value);
    }
    Ok(values)
}

fn pg_values(
    row: &PgRow,
    columns: &[String],
    types: &HashMap<String, PgType>,
    table: &str,
) -> Result<Vec<Value>, MigrateError> {
    let mut values = Vec::with_capacity(columns.len());
    for column in columns {
        let name = column.as_str();
        let value = match types[column] {
            PgType::BigInt => row.try_get::<Option<i64>, _>(name)?.map(Value::Int),
            PgType::Boolean => row.try_get::<Option<bool>, _>(name)?.map(|b| Value::Int(b as i64)),
            PgType::Double => row.try_get::<Option<f64>, _>(name)?.map(Value::Real),
            PgType::Text => row.try_get::<Option<String>, _>(name)?.map(Value::Text),
        };
        values.push(value.unwrap_or(Value::Null));
    }
    let _ = table;
    Ok(values)
}

async fn sqlite_columns(from: &SqlitePool, table: &str) -> Result<Vec<String>, MigrateError> {
    let pragma = format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid");
    let columns: Vec<String> = sqlx::query_scalar(AssertSqlSafe(pragma)).fetch_all(from).await?;
    if columns.is_empty() {
        return Err(MigrateError::Schema(format!("the source has no table `{table}`")));
    }
    Ok(columns)
}

async fn pg_columns(to: &PgPool, table: &str) -> Result<HashMap<String, PgType>, MigrateError> {
    let rows = sqlx::query(
        "SELECT column_name, data_type FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1",
    )
    .bind(table)
    .fetch_all(to)
    .await?;
    let mut columns = HashMap::new();
    for row in rows {
        let (name, kind): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        let kind = match kind.as_str() {
            "bigint" | "integer" | "smallint" => PgType::BigInt,
            "boolean" => PgType::Boolean,
            "double precision" | "real" => PgType::Double,
            "text" | "character varying" => PgType::Text,
            other => {
                return Err(MigrateError::Schema(format!("`{table}.{name}` is a {other}, which this copy cannot fill")))
            }
        };
        columns.insert(name, kind);
    }
    if columns.is_empty() {
        return Err(MigrateError::Schema(format!("the destination has no table `{table}`")));
    }
    Ok(columns)
}

fn key_text(id: &[Value]) -> String {
    id.iter().map(Value::show).collect::<Vec<_>>().join("\u{1f}")
}

fn conflict(table: &str, columns: &[String], id: &[Value], source: &[Value], there: &[Value]) -> MigrateError {
    let differs: Vec<String> = columns
        .iter()
        .zip(source.iter().zip(there))
        .filter(|(_, (a, b))| a != b)
        .map(|(c, (a, b))| format!("{c}: {} here, {} there", a.show(), b.show()))
        .collect();
    MigrateError::Conflict {
        table: table.to_string(),
        key: id.iter().map(Value::show).collect::<Vec<_>>().join(", "),
        differs: differs.join("; "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_of_the_schema_is_copied_parents_first() {
        let order: Vec<&str> = TABLES.iter().map(|(t, _)| *t).collect();
        let at = |t: &str| order.iter().position(|o| *o == t).unwrap();
        for child in ["jobs", "artifacts", "build_logs", "github_deliveries", "published_files", "project_owners"] {
            assert!(at("builds") < at(child), "{child} refers to builds");
        }
    }

    #[test]
    fn parameters_are_numbered_across_tuples() {
        assert_eq!(tuples(2, 2), "($1, $2), ($3, $4)");
        assert_eq!(tuples(1, 3), "($1, $2, $3)");
    }

    #[test]
    fn a_value_binds_only_into_a_column_of_its_kind() {
        let query = || sqlx::query::<sqlx::Postgres>("SELECT $1");
        assert!(bind(query(), &Value::Int(1), PgType::Boolean).is_ok());
        assert!(bind(query(), &Value::Int(2), PgType::Boolean).is_err());
        assert!(bind(query(), &Value::Text("x".into()), PgType::BigInt).is_err());
        assert!(bind(query(), &Value::Null, PgType::Text).is_ok());
    }
}
