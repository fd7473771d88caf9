//! Typed values read back from Postgres: a column holding an id is parsed as it
//! is read, so a value that does not parse is an error of the read, never skipped.

use std::error::Error;
use std::str::FromStr;

use tokio_postgres::types::{FromSql, Type};

/// A text column parsed into `T` (`row.try_get::<_, Parsed<PageId>>(0)?.0`).
pub struct Parsed<T>(pub T);

impl<'a, T> FromSql<'a> for Parsed<T>
where
    T: FromStr,
    T::Err: Error + Send + Sync + 'static,
{
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        let text = <&str as FromSql>::from_sql(ty, raw)?;
        Ok(Self(text.parse()?))
    }

    fn accepts(ty: &Type) -> bool {
        <&str as FromSql>::accepts(ty)
    }
}

/// Reads column `idx` of `row` as a `T`.
pub fn get<T>(row: &tokio_postgres::Row, idx: usize) -> Result<T, tokio_postgres::Error>
where
    T: FromStr,
    T::Err: Error + Send + Sync + 'static,
{
    Ok(row.try_get::<_, Parsed<T>>(idx)?.0)
}
